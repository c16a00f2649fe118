-- Tell every server process that a user's tokens may have stopped working (deleted, or a new
-- password): each drops what it cached about the user and disconnects the user's sockets.
-- A channel of its own, not `notifications`: that one's payloads are the contract's. The payload
-- is the user id alone (identical ones in one transaction merge, which is what we want); a
-- TRUNCATE, which has no rows, announces '*': every user.
CREATE OR REPLACE FUNCTION tg_users__announce_revocation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('user_revocations', '*');
    ELSE
        PERFORM pg_notify('user_revocations', OLD.id::text);
    END IF;
    RETURN NULL;
END;
$$;

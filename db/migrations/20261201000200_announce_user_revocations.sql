-- migrate:up
-- When the password last changed: tokens issued before it are refused. NULL: never reset,
-- so no token issued before this migration is cut off.
ALTER TABLE users ADD COLUMN "tokensValidAfter" timestamptz;

-- A new password ends every token issued before it: tokens whose "iat" is older than this are
-- refused (server/revocation.py). clock_timestamp(), not now(): a token issued by a sign-in
-- between this transaction's start and this statement used the old password too.
CREATE OR REPLACE FUNCTION tg_users__revoke_tokens() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW."tokensValidAfter" := clock_timestamp();
    RETURN NEW;
END;
$$;

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

CREATE TRIGGER _200_revoke_tokens BEFORE UPDATE OF "passwordHash" ON users FOR EACH ROW
    WHEN (OLD."passwordHash" IS DISTINCT FROM NEW."passwordHash")
    EXECUTE FUNCTION tg_users__revoke_tokens();
CREATE TRIGGER _900_announce_revocation_update AFTER UPDATE OF "passwordHash" ON users FOR EACH ROW
    WHEN (OLD."passwordHash" IS DISTINCT FROM NEW."passwordHash")
    EXECUTE FUNCTION tg_users__announce_revocation();
CREATE TRIGGER _900_announce_revocation_delete AFTER DELETE ON users FOR EACH ROW
    EXECUTE FUNCTION tg_users__announce_revocation();
CREATE TRIGGER _900_announce_revocation_truncate AFTER TRUNCATE ON users FOR EACH STATEMENT
    EXECUTE FUNCTION tg_users__announce_revocation();

-- migrate:down
DROP TRIGGER _900_announce_revocation_truncate ON users;
DROP TRIGGER _900_announce_revocation_delete ON users;
DROP TRIGGER _900_announce_revocation_update ON users;
DROP TRIGGER _200_revoke_tokens ON users;
DROP FUNCTION tg_users__announce_revocation();
DROP FUNCTION tg_users__revoke_tokens();
ALTER TABLE users DROP COLUMN "tokensValidAfter";

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

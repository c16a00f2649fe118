-- Named queries on users. Emails are stored lower-case by a trigger; lookups lower-case too.

-- name: user_by_email(email)^
SELECT id, email, "passwordHash" FROM users WHERE email = lower(btrim(:email));

-- name: user_by_id(id)^
SELECT id, email FROM users WHERE id = :id;

-- name: user_insert(email, password_hash)<!
-- No row when the email is taken.
INSERT INTO users (email, "passwordHash") VALUES (:email, :password_hash)
ON CONFLICT (email) DO NOTHING
RETURNING id, email;

-- name: user_set_password(email, password_hash)<!
UPDATE users SET "passwordHash" = :password_hash WHERE email = lower(btrim(:email))
RETURNING id, email;

-- name: user_token_state(id)^
-- No row: the user is gone. "validAfter": whole seconds, comparable with a token's "iat"; NULL
-- when the password was never reset.
SELECT floor(extract(epoch FROM "tokensValidAfter"))::bigint AS "validAfter"
FROM users WHERE id = :id;

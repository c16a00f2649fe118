-- Emails are compared case-insensitively; storing them lower-case lets the unique index do it.
CREATE OR REPLACE FUNCTION tg_users__normalize_email() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.email := lower(btrim(NEW.email));
    RETURN NEW;
END;
$$;

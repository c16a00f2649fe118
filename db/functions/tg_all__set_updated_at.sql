-- Keeps "updatedAt" right for every writer, plain SQL included. A writer that sets "updatedAt"
-- itself is trusted; an UPDATE that changes nothing leaves the row's time alone.
CREATE OR REPLACE FUNCTION tg_all__set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW."updatedAt" IS NOT DISTINCT FROM OLD."updatedAt" AND NEW IS DISTINCT FROM OLD THEN
        NEW."updatedAt" := now();
    END IF;
    RETURN NEW;
END;
$$;

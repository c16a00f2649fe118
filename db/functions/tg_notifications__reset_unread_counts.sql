-- TRUNCATE fires no row events and has no transition tables: it resets the unread counters
-- (kept by tg_notifications__announce) instead. Not announced, as before.
CREATE OR REPLACE FUNCTION tg_notifications__reset_unread_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE notification_unread_counts SET unread = 0 WHERE unread <> 0;
    RETURN NULL;
END;
$$;

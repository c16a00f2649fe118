-- The unread count as a sum of 16 counters kept by statement-level triggers, so reading it costs
-- the same at 1,000 rows as at 10,000,000: count(*) over the partial index reads every unread
-- row, 10 ms per 100,000 on the benchmark machine (bench/RESULTS.md), and the count is read on
-- every getUnreadCount and after every burst of announcements. A statement adds its net change
-- to the slot of its backend, so concurrent writers seldom wait for one another's row lock;
-- readers sum the slots. TRUNCATE fires no row events: it resets the slots instead.
CREATE OR REPLACE FUNCTION tg_notifications__count_unread() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    delta bigint;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE notification_unread_counts SET unread = 0 WHERE unread <> 0;
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO delta FROM new_rows WHERE NOT "isRead";
    ELSIF TG_OP = 'UPDATE' THEN
        delta := (SELECT count(*) FROM new_rows WHERE NOT "isRead")
               - (SELECT count(*) FROM old_rows WHERE NOT "isRead");
    ELSE
        SELECT -count(*) INTO delta FROM old_rows WHERE NOT "isRead";
    END IF;
    IF delta <> 0 THEN
        UPDATE notification_unread_counts SET unread = unread + delta
        WHERE slot = pg_backend_pid() % 16;
    END IF;
    RETURN NULL;
END;
$$;

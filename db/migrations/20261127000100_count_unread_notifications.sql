-- migrate:up
CREATE TABLE notification_unread_counts (
    slot smallint PRIMARY KEY CHECK (slot BETWEEN 0 AND 15),
    unread bigint NOT NULL
);
COMMENT ON TABLE notification_unread_counts IS
    'sum(unread) = count of unread notifications; kept by tg_notifications__count_unread.';

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

-- No write may slip between the backfill and the triggers.
LOCK TABLE notifications IN SHARE MODE;
INSERT INTO notification_unread_counts (slot, unread)
SELECT slot, 0 FROM generate_series(0, 15) AS slot;
UPDATE notification_unread_counts
SET unread = (SELECT count(*) FROM notifications WHERE NOT "isRead")
WHERE slot = 0;

-- Before the announcements (_900): a listener that reads the count after an event sees it.
CREATE TRIGGER _800_count_unread_insert AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tg_notifications__count_unread();
CREATE TRIGGER _800_count_unread_update AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tg_notifications__count_unread();
CREATE TRIGGER _800_count_unread_delete AFTER DELETE ON notifications
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tg_notifications__count_unread();
CREATE TRIGGER _800_count_unread_truncate AFTER TRUNCATE ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION tg_notifications__count_unread();

-- migrate:down
DROP TRIGGER _800_count_unread_truncate ON notifications;
DROP TRIGGER _800_count_unread_delete ON notifications;
DROP TRIGGER _800_count_unread_update ON notifications;
DROP TRIGGER _800_count_unread_insert ON notifications;
DROP FUNCTION tg_notifications__count_unread();
DROP TABLE notification_unread_counts;

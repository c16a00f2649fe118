-- migrate:up
-- One pg_notify per statement that touches notifications, delivered only on commit, and the
-- statement's net change to the unread count (see notification_unread_counts), in one trigger
-- call with one aggregate pass over each transition table: a single-row lead insert used to run
-- two statement triggers here (counter, then announcement) with five scans between them.
-- The payload names at most one id, never a row: a row may be far larger than the 8000-byte
-- limit of pg_notify, and a payload that is too long would abort the writer's transaction.
-- Listeners read the row itself. A statement that touches several rows announces only its
-- action and count: clients refetch. "seq" makes every payload unique, because Postgres folds
-- identical payloads sent in one transaction. The counter is updated before the notification
-- is queued, so a listener that reads the count after an event sees this statement in it.
-- A statement adds its net change to the slot of its backend, so concurrent writers seldom
-- wait for one another's row lock; readers sum the slots.
CREATE OR REPLACE FUNCTION tg_notifications__announce() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed bigint;
    unread_delta bigint;
    one_id uuid;
    action text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*), count(*) FILTER (WHERE NOT "isRead"), min(id::text)::uuid, 'bulk-create'
        INTO changed, unread_delta, one_id, action
        FROM new_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Both transition tables hold the same rows, so "every row went from unread to read"
        -- is "every old row unread and every new row read".
        SELECT n.changed, n.unread - o.unread, n.one_id,
               CASE WHEN n.all_read AND o.all_unread THEN 'mark-all-read' ELSE 'bulk-update' END
        INTO changed, unread_delta, one_id, action
        FROM (SELECT count(*) AS changed, count(*) FILTER (WHERE NOT "isRead") AS unread,
                     min(id::text)::uuid AS one_id, bool_and("isRead") AS all_read
              FROM new_rows) AS n,
             (SELECT count(*) FILTER (WHERE NOT "isRead") AS unread,
                     bool_and(NOT "isRead") AS all_unread
              FROM old_rows) AS o;
    ELSE
        SELECT count(*), -count(*) FILTER (WHERE NOT "isRead"), min(id::text)::uuid, 'bulk-delete'
        INTO changed, unread_delta, one_id, action
        FROM old_rows;
    END IF;

    IF changed = 0 THEN
        RETURN NULL;
    END IF;
    IF unread_delta <> 0 THEN
        UPDATE notification_unread_counts SET unread = unread + unread_delta
        WHERE slot = pg_backend_pid() % 16;
    END IF;
    PERFORM pg_notify('notifications', CASE
        WHEN changed = 1 THEN jsonb_build_object(
            'op', lower(TG_OP), 'count', 1, 'id', one_id,
            'seq', nextval('notification_announcement_seq'))
        ELSE jsonb_build_object(
            'op', lower(TG_OP), 'count', changed, 'action', action,
            'seq', nextval('notification_announcement_seq'))
    END::text);
    RETURN NULL;
END;
$$;

-- TRUNCATE fires no row events and has no transition tables: it resets the unread counters
-- (kept by tg_notifications__announce) instead. Not announced, as before.
CREATE OR REPLACE FUNCTION tg_notifications__reset_unread_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE notification_unread_counts SET unread = 0 WHERE unread <> 0;
    RETURN NULL;
END;
$$;

-- The counter now moves inside the announcement's trigger call (one call and one pass over the
-- transition tables per statement instead of two): the _800 row-event triggers go.
DROP TRIGGER _800_count_unread_delete ON notifications;
DROP TRIGGER _800_count_unread_update ON notifications;
DROP TRIGGER _800_count_unread_insert ON notifications;
DROP TRIGGER _800_count_unread_truncate ON notifications;
DROP FUNCTION tg_notifications__count_unread();
CREATE TRIGGER _800_reset_unread_counts AFTER TRUNCATE ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION tg_notifications__reset_unread_counts();
COMMENT ON TABLE notification_unread_counts IS
    'sum(unread) = count of unread notifications; kept by tg_notifications__announce.';

-- migrate:down
DROP TRIGGER _800_reset_unread_counts ON notifications;
DROP FUNCTION tg_notifications__reset_unread_counts();
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
COMMENT ON TABLE notification_unread_counts IS
    'sum(unread) = count of unread notifications; kept by tg_notifications__count_unread.';

-- One pg_notify per statement that touches notifications, delivered only on commit.
-- The payload names at most one id, never a row: a row may be far larger than the 8000-byte
-- limit of pg_notify, and a payload that is too long would abort the writer's transaction.
-- Listeners read the row itself. A statement that touches several rows announces only its
-- action and count: clients refetch. "seq" makes every payload unique, because Postgres folds
-- identical payloads sent in one transaction.
CREATE OR REPLACE FUNCTION tg_notifications__announce() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed bigint;
    one_id uuid;
    action text;
    payload jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*), min(id::text)::uuid INTO changed, one_id FROM new_rows;
        action := 'bulk-create';
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT count(*), min(id::text)::uuid INTO changed, one_id FROM new_rows;
        -- Both transition tables hold the same rows, so "every row went from unread to read"
        -- is "every old row unread and every new row read".
        IF (SELECT bool_and(NOT "isRead") FROM old_rows)
           AND (SELECT bool_and("isRead") FROM new_rows) THEN
            action := 'mark-all-read';
        ELSE
            action := 'bulk-update';
        END IF;
    ELSE
        SELECT count(*), min(id::text)::uuid INTO changed, one_id FROM old_rows;
        action := 'bulk-delete';
    END IF;

    IF changed = 0 THEN
        RETURN NULL;
    END IF;

    payload := jsonb_build_object(
        'op', lower(TG_OP),
        'count', changed,
        'seq', nextval('notification_announcement_seq'));
    IF changed = 1 THEN
        payload := payload || jsonb_build_object('id', one_id);
    ELSE
        payload := payload || jsonb_build_object('action', action);
    END IF;
    PERFORM pg_notify('notifications', payload::text);
    RETURN NULL;
END;
$$;

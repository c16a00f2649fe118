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

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

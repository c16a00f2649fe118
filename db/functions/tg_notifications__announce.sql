-- One pg_notify per statement that touches notifications, delivered only on commit, and the
-- statement's counts in its transaction's row of notification_transactions (rows inserted, net
-- change to the unread count), which a deferred trigger stamps with the commit order at COMMIT.
-- The payload names at most one id, never a row: a row may be far larger than the 8000-byte
-- limit of pg_notify, and a payload that is too long would abort the writer's transaction.
-- Listeners read the row itself. A statement that touches several rows announces only its
-- action and count: clients refetch. "seq" makes every payload unique, because Postgres folds
-- identical payloads sent in one transaction. No statement here waits for another writer: the
-- transaction's row is its own, and pruning skips rows another transaction holds.
CREATE OR REPLACE FUNCTION tg_notifications__announce() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed bigint;
    inserted bigint := 0;
    unread_delta bigint;
    one_id uuid;
    action text;
    marker text := coalesce(current_setting('crm.notification_tx', true), '');
    row_ctid tid;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*), count(*) FILTER (WHERE NOT "isRead"), min(id::text)::uuid, 'bulk-create'
        INTO changed, unread_delta, one_id, action
        FROM new_rows;
        inserted := changed;
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

    -- The transaction's own row: inserted once (its deferred trigger stamps it at commit),
    -- the statements' sums kept in transaction-local settings until then, so a statement
    -- writes no row version of its own. Settings and row roll back with a savepoint alike.
    IF marker = '' THEN
        -- The sums first: under SET CONSTRAINTS ... IMMEDIATE the commit trigger runs at the
        -- end of the INSERT below.
        PERFORM set_config('crm.notification_tx', 'pending', true),
                set_config('crm.notification_tx_ctid', '', true),
                set_config('crm.notification_tx_inserted', inserted::text, true),
                set_config('crm.notification_tx_unread', unread_delta::text, true);
        INSERT INTO notification_transactions (txid) VALUES (pg_current_xact_id())
        RETURNING ctid INTO row_ctid;
        IF current_setting('crm.notification_tx') = 'pending' THEN
            PERFORM set_config('crm.notification_tx_ctid', row_ctid::text, true);
        END IF;
    ELSIF marker = 'pending' THEN
        PERFORM set_config('crm.notification_tx_inserted',
                           (current_setting('crm.notification_tx_inserted')::bigint
                            + inserted)::text, true),
                set_config('crm.notification_tx_unread',
                           (current_setting('crm.notification_tx_unread')::bigint
                            + unread_delta)::text, true);
    ELSE
        -- Stamped already (SET CONSTRAINTS ... IMMEDIATE ran the commit trigger early).
        UPDATE notification_transactions
        SET "insertedRows" = "insertedRows" + inserted, "unreadDelta" = "unreadDelta" + unread_delta
        WHERE ctid = current_setting('crm.notification_tx_ctid')::tid
        RETURNING ctid INTO row_ctid;
        PERFORM set_config('crm.notification_tx_ctid', row_ctid::text, true);
    END IF;

    -- A transaction whose rows are all gone is no longer needed for catch-up; once the unread
    -- fold has passed it, its row goes. SKIP LOCKED: never wait for another deleter. Only under
    -- read committed, where a row deleted meanwhile is skipped instead of failing.
    IF TG_OP = 'DELETE' AND current_setting('transaction_isolation') = 'read committed' THEN
        DELETE FROM notification_transactions AS t
        WHERE t.txid IN (
            SELECT s.txid
            FROM notification_transactions AS s
            WHERE s.txid IN (SELECT o."createdTxid" FROM old_rows AS o)
              AND s."commitSeq" <= (SELECT max(f."commitSeq") FROM notification_unread_folds AS f)
              AND NOT EXISTS (SELECT FROM notifications AS n WHERE n."createdTxid" = s.txid)
            FOR UPDATE SKIP LOCKED);
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

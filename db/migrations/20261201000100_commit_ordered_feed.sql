-- migrate:up
-- Commit order for the feed, and an unread count that no writer waits for.
--
-- Every transaction that changes notifications gets one row in notification_transactions. At
-- COMMIT a deferred trigger takes one advisory lock and stamps the row with the next
-- "commitSeq". The lock is held until the transaction has become visible (locks go after
-- commit), and NOTIFY already serialises the commits of exactly these transactions, so the
-- stamps follow commit order: any snapshot that sees seq N sees every seq below it. Catch-up
-- pages then walk (commitSeq, insertSeq), which a late commit can never fall behind, and an
-- event's cursor stands for "everything committed up to this row", nothing more.
--
-- The unread count is a fold (notification_unread_folds: the count up to some commitSeq) plus
-- the "unreadDelta" of each transaction committed after it. Writers only INSERT their own row
-- and update it once at commit: no writer ever waits for another's row lock, and a long open
-- transaction does not hold the fold back (its seq does not exist until it commits).
-- The server folds in the background; see server/sql/notifications.sql.

CREATE SEQUENCE notification_commit_seq;

CREATE TABLE notification_transactions (
    txid xid8 PRIMARY KEY,
    -- Null until the transaction commits (the deferred trigger sets it).
    "commitSeq" bigint UNIQUE,
    "insertedRows" bigint NOT NULL DEFAULT 0,
    "unreadDelta" bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE notification_transactions IS
    'One row per transaction that changed notifications, stamped with its commit order.';
-- Catch-up walks only the transactions that inserted rows.
CREATE INDEX notification_transactions_inserted_idx ON notification_transactions ("commitSeq")
    WHERE "insertedRows" > 0;

CREATE TABLE notification_unread_folds (
    "commitSeq" bigint PRIMARY KEY,
    unread bigint NOT NULL
);
COMMENT ON TABLE notification_unread_folds IS
    'Unread notifications counted up to "commitSeq"; the newest row plus later deltas is the count.';

-- Nothing may write notifications between the backfill and the new triggers.
LOCK TABLE notifications IN SHARE ROW EXCLUSIVE MODE;

-- The order of inserts inside one transaction (a table rewrite: existing rows get numbers in
-- their physical order, which is their insert order unless they were updated).
CREATE SEQUENCE notification_insert_seq;
ALTER TABLE notifications
    ADD COLUMN "insertSeq" bigint NOT NULL DEFAULT nextval('notification_insert_seq');
ALTER SEQUENCE notification_insert_seq OWNED BY notifications."insertSeq";
COMMENT ON COLUMN notifications."insertSeq" IS
    'Insert order; with the transaction''s commitSeq, the row''s place in commit order.';
DROP INDEX notifications_created_txid_idx;
CREATE INDEX notifications_created_txid_idx ON notifications ("createdTxid", "insertSeq");

-- Existing rows: their transactions committed long ago, in about the order they began.
INSERT INTO notification_transactions (txid, "commitSeq", "insertedRows")
SELECT "createdTxid", row_number() OVER (ORDER BY min("createdAt"), "createdTxid"), count(*)
FROM notifications
GROUP BY "createdTxid";
SELECT setval('notification_commit_seq',
              (SELECT coalesce(max("commitSeq"), 0) + 1 FROM notification_transactions), false);
INSERT INTO notification_unread_folds ("commitSeq", unread)
SELECT (SELECT coalesce(max("commitSeq"), 0) FROM notification_transactions),
       (SELECT count(*) FROM notifications WHERE NOT "isRead");

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

-- At COMMIT (deferred), once per transaction: the commit order stamp and the final sums.
CREATE OR REPLACE FUNCTION tg_notification_transactions__stamp_commit() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    row_ctid tid;
BEGIN
    -- Held until this transaction is visible, so the next stamp goes to a later commit. The
    -- key is a fixed number of this project's ("crm commit order"), not a hash that may change.
    PERFORM pg_advisory_xact_lock(4352631887301);
    IF current_setting('crm.notification_tx_ctid') = '' THEN
        -- Fired by the INSERT itself (SET CONSTRAINTS ... IMMEDIATE): find the row by key.
        UPDATE notification_transactions
        SET "commitSeq" = nextval('notification_commit_seq'),
            "insertedRows" = current_setting('crm.notification_tx_inserted')::bigint,
            "unreadDelta" = current_setting('crm.notification_tx_unread')::bigint
        WHERE txid = NEW.txid
        RETURNING ctid INTO row_ctid;
    ELSE
        -- By its address: a read of no index page, so no SERIALIZABLE conflict with writers.
        UPDATE notification_transactions
        SET "commitSeq" = nextval('notification_commit_seq'),
            "insertedRows" = current_setting('crm.notification_tx_inserted')::bigint,
            "unreadDelta" = current_setting('crm.notification_tx_unread')::bigint
        WHERE ctid = current_setting('crm.notification_tx_ctid')::tid
        RETURNING ctid INTO row_ctid;
    END IF;
    PERFORM set_config('crm.notification_tx', 'stamped', true),
            set_config('crm.notification_tx_ctid', row_ctid::text, true);
    RETURN NULL;
END;
$$;

-- TRUNCATE has waited for every transaction that touched notifications, and none can touch
-- them until it commits: the bookkeeping restarts at a new fold of zero, and clients are told
-- (they refetch). The commit sequence goes on, so cursors from before stay comparable.
CREATE OR REPLACE FUNCTION tg_notifications__announce_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    row_ctid tid;
BEGIN
    IF coalesce(current_setting('crm.notification_tx', true), '') = '' THEN
        TRUNCATE notification_transactions;
    ELSE
        -- This transaction changed notifications before: its own row stays, emptied (and
        -- TRUNCATE would refuse the table while that row's commit trigger is pending).
        DELETE FROM notification_transactions
        WHERE ctid <> current_setting('crm.notification_tx_ctid')::tid;
        PERFORM set_config('crm.notification_tx_inserted', '0', true),
                set_config('crm.notification_tx_unread', '0', true);
        IF current_setting('crm.notification_tx') = 'stamped' THEN
            UPDATE notification_transactions SET "insertedRows" = 0, "unreadDelta" = 0
            RETURNING ctid INTO row_ctid;
            PERFORM set_config('crm.notification_tx_ctid', row_ctid::text, true);
        END IF;
    END IF;
    INSERT INTO notification_unread_folds ("commitSeq", unread)
    VALUES (nextval('notification_commit_seq'), 0);
    PERFORM pg_notify('notifications', jsonb_build_object(
        'op', 'truncate', 'seq', nextval('notification_announcement_seq'))::text);
    RETURN NULL;
END;
$$;

DROP TRIGGER _800_reset_unread_counts ON notifications;
DROP FUNCTION tg_notifications__reset_unread_counts();
DROP TABLE notification_unread_counts;
-- For the previous release's processes during a rolling deploy: they sum this "table". The
-- count here is the new one, exact. Drop it in a later release.
CREATE VIEW notification_unread_counts AS
SELECT 0::smallint AS slot,
       f.unread + coalesce((SELECT sum(t."unreadDelta") FROM notification_transactions AS t
                            WHERE t."commitSeq" > f."commitSeq"), 0) AS unread
FROM (SELECT "commitSeq", unread FROM notification_unread_folds
      ORDER BY "commitSeq" DESC LIMIT 1) AS f;
COMMENT ON VIEW notification_unread_counts IS
    'Deprecated: the unread count for servers before 20261201000100; use notification_unread_count.';

CREATE CONSTRAINT TRIGGER _100_stamp_commit AFTER INSERT ON notification_transactions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION tg_notification_transactions__stamp_commit();
CREATE TRIGGER _900_announce_truncate AFTER TRUNCATE ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION tg_notifications__announce_truncate();

-- migrate:down
DROP TRIGGER _900_announce_truncate ON notifications;
DROP FUNCTION tg_notifications__announce_truncate();
DROP VIEW notification_unread_counts;

CREATE TABLE notification_unread_counts (
    slot smallint PRIMARY KEY CHECK (slot BETWEEN 0 AND 15),
    unread bigint NOT NULL
);
COMMENT ON TABLE notification_unread_counts IS
    'sum(unread) = count of unread notifications; kept by tg_notifications__announce.';
LOCK TABLE notifications IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO notification_unread_counts (slot, unread)
SELECT slot, 0 FROM generate_series(0, 15) AS slot;
UPDATE notification_unread_counts
SET unread = (SELECT count(*) FROM notifications WHERE NOT "isRead")
WHERE slot = 0;

CREATE OR REPLACE FUNCTION tg_notifications__reset_unread_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE notification_unread_counts SET unread = 0 WHERE unread <> 0;
    RETURN NULL;
END;
$$;
CREATE TRIGGER _800_reset_unread_counts AFTER TRUNCATE ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION tg_notifications__reset_unread_counts();

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

DROP INDEX notifications_created_txid_idx;
ALTER TABLE notifications DROP COLUMN "insertSeq";
CREATE INDEX notifications_created_txid_idx ON notifications ("createdTxid");
DROP TABLE notification_unread_folds;
DROP TRIGGER _100_stamp_commit ON notification_transactions;
DROP FUNCTION tg_notification_transactions__stamp_commit();
DROP TABLE notification_transactions;
DROP SEQUENCE notification_commit_seq;

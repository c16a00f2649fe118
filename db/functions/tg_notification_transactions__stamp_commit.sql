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

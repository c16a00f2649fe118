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

-- Named queries on notifications. Rows for clients come with what their cursors need (see
-- server/cursors.py): "commitSeq" (the commit order of the inserting transaction, from
-- notification_transactions) and "insertSeq"; rows of a feed page also with what the page's read
-- saw ("highWater", "newestAt", "newestId"). notifications comes first in every FROM: TRUNCATE
-- locks it before notification_transactions, and readers take the same order.

-- name: notification_by_ids(ids)
-- Rows by id, newest first, for the realtime listener and for GraphQL.
SELECT n.id, n.type::text AS type, n.title, n.message, n."isRead", n."relatedLeadId",
       n."createdAt", n."updatedAt", coalesce(t."commitSeq", 0) AS "commitSeq", n."insertSeq"
FROM notifications AS n
LEFT JOIN notification_transactions AS t ON t.txid = n."createdTxid"
WHERE n.id = ANY(CAST(:ids AS uuid[]))
ORDER BY n."createdAt" DESC, n.id DESC;

-- name: notification_feed_before(limit, unread_only, before_created_at, before_id)
-- The first page (cursor NULL) or the next `limit` rows older than the cursor, newest first.
-- The row comparison matches the feed index ("createdAt" DESC, id DESC). Every row also gets
-- the newest commit and the newest feed position this statement saw: its cursor stands for
-- "what this read could see at or below me".
SELECT n.id, n.type::text AS type, n.title, n.message, n."isRead", n."relatedLeadId",
       n."createdAt", n."updatedAt",
       seen."highWater", newest."createdAt" AS "newestAt", newest.id AS "newestId"
FROM notifications AS n,
     (SELECT "createdAt", id FROM notifications
      ORDER BY "createdAt" DESC, id DESC LIMIT 1) AS newest,
     (SELECT coalesce(max("commitSeq"), 0) AS "highWater"
      FROM notification_transactions) AS seen
WHERE (CAST(:before_created_at AS timestamptz) IS NULL
       OR (n."createdAt", n.id) < (CAST(:before_created_at AS timestamptz),
                                   CAST(:before_id AS uuid)))
  AND (NOT CAST(:unread_only AS boolean) OR NOT n."isRead")
ORDER BY n."createdAt" DESC, n.id DESC
LIMIT :limit;

-- name: notification_catch_up_seen(limit, unread_only, after_created_at, after_id, newest_created_at, newest_id, high_water)
-- Catch-up from a page's cursor, first part: rows newer than the cursor in feed order that the
-- page's read saw (committed by its high water, not newer than its newest row), oldest first.
-- Bounded by the newest row, the scan never walks into what was written after the read.
SELECT n.id, n.type::text AS type, n.title, n.message, n."isRead", n."relatedLeadId",
       n."createdAt", n."updatedAt", t."commitSeq", n."insertSeq"
FROM notifications AS n
JOIN notification_transactions AS t ON t.txid = n."createdTxid"
WHERE (n."createdAt", n.id) > (CAST(:after_created_at AS timestamptz), CAST(:after_id AS uuid))
  AND (n."createdAt", n.id) <= (CAST(:newest_created_at AS timestamptz),
                                CAST(:newest_id AS uuid))
  AND t."commitSeq" <= CAST(:high_water AS bigint)
  AND (NOT CAST(:unread_only AS boolean) OR NOT n."isRead")
ORDER BY n."createdAt", n.id
LIMIT :limit;

-- name: notification_catch_up_committed(limit, unread_only, commit_seq, insert_seq)
-- Catch-up in commit order: rows after (commitSeq, insertSeq), oldest first. A transaction that
-- commits late gets a later commitSeq than every row a client already has, so nothing is
-- skipped; the partial index walks only transactions that inserted rows.
SELECT n.id, n.type::text AS type, n.title, n.message, n."isRead", n."relatedLeadId",
       n."createdAt", n."updatedAt", t."commitSeq", n."insertSeq"
FROM notifications AS n
JOIN notification_transactions AS t ON t.txid = n."createdTxid"
WHERE t."insertedRows" > 0
  AND t."commitSeq" >= CAST(:commit_seq AS bigint)
  AND (t."commitSeq", n."insertSeq") > (CAST(:commit_seq AS bigint), CAST(:insert_seq AS bigint))
  AND (NOT CAST(:unread_only AS boolean) OR NOT n."isRead")
ORDER BY t."commitSeq", n."insertSeq"
LIMIT :limit;

-- name: notification_unread_count()^
-- The newest fold plus every transaction committed after it: a handful of rows whatever the
-- table holds (the server folds every second or so), and exact, since one snapshot sees a
-- prefix of the commit order. A transaction's own uncommitted changes (kept in its settings
-- until the commit stamps its row) count for itself.
SELECT (f.unread
        + coalesce((SELECT sum(t."unreadDelta") FROM notification_transactions AS t
                    WHERE t."commitSeq" > f."commitSeq"), 0)
        + CASE WHEN current_setting('crm.notification_tx', true) = 'pending'
               THEN current_setting('crm.notification_tx_unread')::bigint ELSE 0 END
       )::integer AS count
FROM (SELECT "commitSeq", unread FROM notification_unread_folds
      ORDER BY "commitSeq" DESC LIMIT 1) AS f;

-- name: notification_unread_fold_lock()^
-- One folder at a time, in its own statement: the fold's snapshot is then taken after the lock,
-- so it sees the fold of whoever held it before (same fold twice would be a duplicate key).
SELECT pg_try_advisory_xact_lock(4352631887302) AS locked;

-- name: notification_unread_fold()^
-- Adds the transactions committed since the newest fold into a new fold, then drops what it
-- replaces: older folds, and the rows of transactions that inserted nothing (catch-up never
-- needs them). Readers with older snapshots still see what they need (MVCC). Run after
-- notification_unread_fold_lock in the same transaction; nothing here is locked by a writer,
-- so writers never wait for it.
WITH latest AS (
    SELECT "commitSeq", unread FROM notification_unread_folds
    ORDER BY "commitSeq" DESC LIMIT 1
), pending AS (
    SELECT max(t."commitSeq") AS upto, sum(t."unreadDelta") AS delta
    FROM notification_transactions AS t, latest
    WHERE t."commitSeq" > latest."commitSeq"
), folded AS (
    INSERT INTO notification_unread_folds ("commitSeq", unread)
    SELECT pending.upto, latest.unread + pending.delta FROM latest, pending
    WHERE pending.upto IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING "commitSeq"
), spent AS (
    DELETE FROM notification_transactions AS t
    USING latest, folded
    WHERE t."commitSeq" > latest."commitSeq" AND t."commitSeq" <= folded."commitSeq"
      AND t."insertedRows" = 0
    RETURNING 1
), replaced AS (
    DELETE FROM notification_unread_folds AS f
    USING folded
    WHERE f."commitSeq" < folded."commitSeq"
    RETURNING 1
)
SELECT (SELECT "commitSeq" FROM folded) AS "foldedThrough",
       (SELECT count(*) FROM spent) AS "spentTransactions",
       (SELECT count(*) FROM replaced) AS "replacedFolds";

-- name: notification_mark_read(id)^
-- Only an unread row is updated, so marking a read row again writes nothing and announces
-- nothing. No row back means "already read, being changed by someone else, or gone": the store
-- then reads the row in a new statement, whose snapshot sees what those others committed (this
-- statement's snapshot may predate a concurrent markAllAsRead it waited for).
UPDATE notifications SET "isRead" = true
WHERE id = :id AND NOT "isRead"
RETURNING id, type::text AS type, title, message, "isRead", "relatedLeadId",
          "createdAt", "updatedAt",
          coalesce((SELECT t."commitSeq" FROM notification_transactions AS t
                    WHERE t.txid = notifications."createdTxid"), 0) AS "commitSeq",
          "insertSeq";

-- name: notification_mark_all_read()!
-- One statement whatever the count, so the announcement trigger sends one event.
UPDATE notifications SET "isRead" = true WHERE NOT "isRead";

-- name: notification_delete(id)!
DELETE FROM notifications WHERE id = :id;

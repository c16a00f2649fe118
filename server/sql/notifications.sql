-- Named queries on notifications. Every query that returns rows for clients also returns
-- pg_current_snapshot() from the SAME statement: a row's cursor carries the snapshot of the read
-- that returned it, so getNotifications(after:) can also return rows whose transactions had not
-- committed yet when that read ran (see cursors.py).

-- name: notification_by_ids(ids)
-- Rows by id, newest first, for the realtime listener and for GraphQL.
SELECT n.id, n.type::text AS type, n.title, n.message, n."isRead", n."relatedLeadId",
       n."createdAt", n."updatedAt", pg_current_snapshot()::text AS snapshot
FROM notifications AS n
WHERE n.id = ANY(CAST(:ids AS uuid[]))
ORDER BY n."createdAt" DESC, n.id DESC;

-- name: notification_feed_before(limit, unread_only, before_created_at, before_id)
-- The first page (cursor NULL) or the next `limit` rows older than the cursor, newest first.
-- The row comparison matches the feed index ("createdAt" DESC, id DESC).
SELECT n.id, n.type::text AS type, n.title, n.message, n."isRead", n."relatedLeadId",
       n."createdAt", n."updatedAt", pg_current_snapshot()::text AS snapshot
FROM notifications AS n
WHERE (CAST(:before_created_at AS timestamptz) IS NULL
       OR (n."createdAt", n.id) < (CAST(:before_created_at AS timestamptz),
                                   CAST(:before_id AS uuid)))
  AND (NOT CAST(:unread_only AS boolean) OR NOT n."isRead")
ORDER BY n."createdAt" DESC, n.id DESC
LIMIT :limit;

-- name: notification_feed_after(limit, unread_only, after_created_at, after_id, after_snapshot)
-- Rows newer than the cursor, plus rows whose inserting transaction the cursor's snapshot did
-- not see: a transaction that started before the page was read but committed after it has an
-- older "createdAt" than the page and would otherwise be skipped for ever. Transactions below
-- the snapshot's xmin were all settled when it was taken, so the index on "createdTxid" bounds
-- the second search to the few recent ones. Of those, the `limit` closest to the cursor are
-- returned, newest first, so repeating with the newest cursor walks forward without gaps.
SELECT page.*
FROM (
    SELECT n.id, n.type::text AS type, n.title, n.message, n."isRead", n."relatedLeadId",
           n."createdAt", n."updatedAt", pg_current_snapshot()::text AS snapshot
    FROM notifications AS n
    WHERE ((n."createdAt", n.id) > (CAST(:after_created_at AS timestamptz),
                                    CAST(:after_id AS uuid))
           OR (n."createdTxid" >= pg_snapshot_xmin(CAST(:after_snapshot AS pg_snapshot))
               AND NOT pg_visible_in_snapshot(n."createdTxid",
                                              CAST(:after_snapshot AS pg_snapshot))))
      AND (NOT CAST(:unread_only AS boolean) OR NOT n."isRead")
    ORDER BY n."createdAt" ASC, n.id ASC
    LIMIT :limit
) AS page
ORDER BY page."createdAt" DESC, page.id DESC;

-- name: notification_unread_count()^
-- The counters the statement triggers keep (tg_notifications__count_unread): constant time,
-- where count(*) over the unread index grows with the unread rows.
SELECT coalesce(sum(unread), 0)::integer AS count FROM notification_unread_counts;

-- name: notification_mark_read(id)^
-- Only an unread row is updated, so marking a read row again writes nothing and announces
-- nothing. No row back means "already read, being changed by someone else, or gone": the store
-- then reads the row in a new statement, whose snapshot sees what those others committed (this
-- statement's snapshot may predate a concurrent markAllAsRead it waited for).
UPDATE notifications SET "isRead" = true
WHERE id = :id AND NOT "isRead"
RETURNING id, type::text AS type, title, message, "isRead", "relatedLeadId",
          "createdAt", "updatedAt", pg_current_snapshot()::text AS snapshot;

-- name: notification_mark_all_read()!
-- One statement whatever the count, so the announcement trigger sends one event.
UPDATE notifications SET "isRead" = true WHERE NOT "isRead";

-- name: notification_delete(id)!
DELETE FROM notifications WHERE id = :id;

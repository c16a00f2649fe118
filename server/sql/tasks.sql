-- Named queries on tasks. Completing one creates its notification in the database (trigger).

-- name: task_insert(lead_id, title)<!
-- INSERT ... SELECT returns no row for an unknown lead, which the store reports as not found.
INSERT INTO tasks ("leadId", title)
SELECT l.id, CAST(:title AS text) FROM leads AS l WHERE l.id = :lead_id
RETURNING id, "leadId", title, "completedAt", "createdAt";

-- name: task_complete(id)<!
-- Completing a completed task keeps its first completion time and so notifies only once.
UPDATE tasks SET "completedAt" = coalesce("completedAt", now())
WHERE id = :id
RETURNING id, "leadId", title, "completedAt", "createdAt";

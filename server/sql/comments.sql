-- Named queries on comments. Adding one creates its notification in the database (trigger).

-- name: comment_insert(lead_id, body, author_email)<!
-- INSERT ... SELECT returns no row for an unknown lead, which the store reports as not found.
INSERT INTO comments ("leadId", body, "authorEmail")
SELECT l.id, CAST(:body AS text), CAST(:author_email AS text) FROM leads AS l WHERE l.id = :lead_id
RETURNING id, "leadId", body, "authorEmail", "createdAt";

-- Named queries on leads. Inserting or re-scoring a lead creates its notification in the
-- database (triggers); nothing here writes to notifications.

-- name: lead_by_id(id)^
SELECT id, "firstName", "lastName", email, phone, company, status, score, "createdAt", "updatedAt"
FROM leads
WHERE id = :id;

-- name: lead_by_ids(ids)
-- One statement for any number of leads: the batch behind Notification.relatedLead.
SELECT id, "firstName", "lastName", email, phone, company, status, score, "createdAt", "updatedAt"
FROM leads
WHERE id = ANY(CAST(:ids AS integer[]));

-- name: lead_list(limit, offset)
-- Newest first, like the notification feed.
SELECT id, "firstName", "lastName", email, phone, company, status, score, "createdAt", "updatedAt"
FROM leads
ORDER BY "createdAt" DESC, id DESC
LIMIT :limit OFFSET :offset;

-- name: lead_insert(first_name, last_name, email, phone, company, status, score)<!
-- A NULL status or score means "not given": the column default applies.
INSERT INTO leads ("firstName", "lastName", email, phone, company, status, score)
VALUES (:first_name, :last_name, :email, :phone, :company,
        coalesce(:status, 'new'), coalesce(CAST(:score AS integer), 0))
RETURNING id, "firstName", "lastName", email, phone, company, status, score,
          "createdAt", "updatedAt";

-- name: lead_update(id, set_first_name, first_name, set_last_name, last_name, set_email, email, set_phone, phone, set_company, company, set_status, status, set_score, score)<!
-- Each column changes only when its set_* flag is true, so a field the caller left out keeps its
-- value while a nullable one can still be cleared with an explicit null.
UPDATE leads SET
    "firstName" = CASE WHEN :set_first_name THEN CAST(:first_name AS text) ELSE "firstName" END,
    "lastName" = CASE WHEN :set_last_name THEN CAST(:last_name AS text) ELSE "lastName" END,
    email = CASE WHEN :set_email THEN CAST(:email AS text) ELSE email END,
    phone = CASE WHEN :set_phone THEN CAST(:phone AS text) ELSE phone END,
    company = CASE WHEN :set_company THEN CAST(:company AS text) ELSE company END,
    status = CASE WHEN :set_status THEN CAST(:status AS text) ELSE status END,
    score = CASE WHEN :set_score THEN CAST(:score AS integer) ELSE score END
WHERE id = :id
RETURNING id, "firstName", "lastName", email, phone, company, status, score,
          "createdAt", "updatedAt";

-- name: lead_delete(id)!
-- Tasks and comments go with the lead (ON DELETE CASCADE); its notifications stay, with
-- "relatedLeadId" set to null.
DELETE FROM leads WHERE id = :id;

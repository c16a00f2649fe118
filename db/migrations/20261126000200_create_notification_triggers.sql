-- migrate:up
-- Keeps "updatedAt" right for every writer, plain SQL included. A writer that sets "updatedAt"
-- itself is trusted; an UPDATE that changes nothing leaves the row's time alone.
CREATE OR REPLACE FUNCTION tg_all__set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW."updatedAt" IS NOT DISTINCT FROM OLD."updatedAt" AND NEW IS DISTINCT FROM OLD THEN
        NEW."updatedAt" := now();
    END IF;
    RETURN NEW;
END;
$$;

-- Emails are compared case-insensitively; storing them lower-case lets the unique index do it.
CREATE OR REPLACE FUNCTION tg_users__normalize_email() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.email := lower(btrim(NEW.email));
    RETURN NEW;
END;
$$;

-- Statement-level with a transition table: an import of 100,000 leads is one INSERT into
-- notifications, hence one announcement, instead of 100,000 row-level trigger calls.
CREATE OR REPLACE FUNCTION tg_leads__notify_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notifications (type, title, message, "relatedLeadId")
    SELECT 'lead_created', 'New Lead Created',
           format('%s %s added to pipeline', l."firstName", l."lastName"),
           l.id
    FROM new_leads AS l;
    RETURN NULL;
END;
$$;

-- Old and new rows are paired by id; a statement that changes no score writes nothing.
CREATE OR REPLACE FUNCTION tg_leads__notify_score_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notifications (type, title, message, "relatedLeadId")
    SELECT 'score_updated', 'Lead Score Updated',
           format('%s %s score changed from %s to %s',
                  n."firstName", n."lastName", o.score, n.score),
           n.id
    FROM new_leads AS n
    JOIN old_leads AS o USING (id)
    WHERE n.score IS DISTINCT FROM o.score;
    RETURN NULL;
END;
$$;

-- A task counts as completed when "completedAt" goes from null to a time, or when it is
-- inserted already completed. One trigger function serves both events so the rule lives once.
CREATE OR REPLACE FUNCTION tg_tasks__notify_completed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO notifications (type, title, message, "relatedLeadId")
        SELECT 'task_completed', 'Task Completed',
               format('%s completed for %s %s', t.title, l."firstName", l."lastName"),
               l.id
        FROM new_tasks AS t
        JOIN leads AS l ON l.id = t."leadId"
        WHERE t."completedAt" IS NOT NULL;
    ELSE
        INSERT INTO notifications (type, title, message, "relatedLeadId")
        SELECT 'task_completed', 'Task Completed',
               format('%s completed for %s %s', n.title, l."firstName", l."lastName"),
               l.id
        FROM new_tasks AS n
        JOIN old_tasks AS o USING (id)
        JOIN leads AS l ON l.id = n."leadId"
        WHERE o."completedAt" IS NULL AND n."completedAt" IS NOT NULL;
    END IF;
    RETURN NULL;
END;
$$;

-- Comments by plain SQL may have no author; the message then says "Someone".
CREATE OR REPLACE FUNCTION tg_comments__notify_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notifications (type, title, message, "relatedLeadId")
    SELECT 'comment_added', 'New Comment',
           format('%s commented on %s %s',
                  coalesce(c."authorEmail", 'Someone'), l."firstName", l."lastName"),
           l.id
    FROM new_comments AS c
    JOIN leads AS l ON l.id = c."leadId";
    RETURN NULL;
END;
$$;

CREATE SEQUENCE notification_announcement_seq;

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

-- Triggers fire in name order; the numbers say where each one stands.
CREATE TRIGGER _100_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION tg_all__set_updated_at();
CREATE TRIGGER _200_normalize_email BEFORE INSERT OR UPDATE OF email ON users
    FOR EACH ROW EXECUTE FUNCTION tg_users__normalize_email();

CREATE TRIGGER _100_set_updated_at BEFORE UPDATE ON leads
    FOR EACH ROW EXECUTE FUNCTION tg_all__set_updated_at();
CREATE TRIGGER _500_notify_created AFTER INSERT ON leads
    REFERENCING NEW TABLE AS new_leads
    FOR EACH STATEMENT EXECUTE FUNCTION tg_leads__notify_created();
CREATE TRIGGER _510_notify_score_updated AFTER UPDATE ON leads
    REFERENCING OLD TABLE AS old_leads NEW TABLE AS new_leads
    FOR EACH STATEMENT EXECUTE FUNCTION tg_leads__notify_score_updated();

CREATE TRIGGER _100_set_updated_at BEFORE UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION tg_all__set_updated_at();
CREATE TRIGGER _500_notify_completed_on_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION tg_tasks__notify_completed();
CREATE TRIGGER _510_notify_completed_on_update AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION tg_tasks__notify_completed();

CREATE TRIGGER _100_set_updated_at BEFORE UPDATE ON comments
    FOR EACH ROW EXECUTE FUNCTION tg_all__set_updated_at();
CREATE TRIGGER _500_notify_added AFTER INSERT ON comments
    REFERENCING NEW TABLE AS new_comments
    FOR EACH STATEMENT EXECUTE FUNCTION tg_comments__notify_added();

-- Announcements go last and once per statement: a transaction that notifies holds a
-- cluster-wide lock until it commits, so one per row would serialise bulk writers for longer.
CREATE TRIGGER _100_set_updated_at BEFORE UPDATE ON notifications
    FOR EACH ROW EXECUTE FUNCTION tg_all__set_updated_at();
CREATE TRIGGER _900_announce_insert AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tg_notifications__announce();
CREATE TRIGGER _900_announce_update AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tg_notifications__announce();
CREATE TRIGGER _900_announce_delete AFTER DELETE ON notifications
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tg_notifications__announce();

-- migrate:down
DROP TRIGGER _900_announce_delete ON notifications;
DROP TRIGGER _900_announce_update ON notifications;
DROP TRIGGER _900_announce_insert ON notifications;
DROP TRIGGER _100_set_updated_at ON notifications;
DROP TRIGGER _500_notify_added ON comments;
DROP TRIGGER _100_set_updated_at ON comments;
DROP TRIGGER _510_notify_completed_on_update ON tasks;
DROP TRIGGER _500_notify_completed_on_insert ON tasks;
DROP TRIGGER _100_set_updated_at ON tasks;
DROP TRIGGER _510_notify_score_updated ON leads;
DROP TRIGGER _500_notify_created ON leads;
DROP TRIGGER _100_set_updated_at ON leads;
DROP TRIGGER _200_normalize_email ON users;
DROP TRIGGER _100_set_updated_at ON users;
DROP FUNCTION tg_notifications__announce();
DROP SEQUENCE notification_announcement_seq;
DROP FUNCTION tg_comments__notify_added();
DROP FUNCTION tg_tasks__notify_completed();
DROP FUNCTION tg_leads__notify_score_updated();
DROP FUNCTION tg_leads__notify_created();
DROP FUNCTION tg_users__normalize_email();
DROP FUNCTION tg_all__set_updated_at();

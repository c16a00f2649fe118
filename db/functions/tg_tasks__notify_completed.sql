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

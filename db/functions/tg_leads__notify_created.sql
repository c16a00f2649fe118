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

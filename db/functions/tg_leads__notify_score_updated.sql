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

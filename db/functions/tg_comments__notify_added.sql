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

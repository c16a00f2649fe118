\restrict dbmate

-- Dumped from database version 18.4
-- Dumped by pg_dump version 18.4

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: notification_type; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.notification_type AS ENUM (
    'lead_created',
    'task_completed',
    'score_updated',
    'comment_added'
);


--
-- Name: tg_all__set_updated_at(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.tg_all__set_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW."updatedAt" IS NOT DISTINCT FROM OLD."updatedAt" AND NEW IS DISTINCT FROM OLD THEN
        NEW."updatedAt" := now();
    END IF;
    RETURN NEW;
END;
$$;


--
-- Name: tg_comments__notify_added(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.tg_comments__notify_added() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: tg_leads__notify_created(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.tg_leads__notify_created() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO notifications (type, title, message, "relatedLeadId")
    SELECT 'lead_created', 'New Lead Created',
           format('%s %s added to pipeline', l."firstName", l."lastName"),
           l.id
    FROM new_leads AS l;
    RETURN NULL;
END;
$$;


--
-- Name: tg_leads__notify_score_updated(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.tg_leads__notify_score_updated() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: tg_notification_transactions__stamp_commit(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.tg_notification_transactions__stamp_commit() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    row_ctid tid;
BEGIN
    -- Held until this transaction is visible, so the next stamp goes to a later commit. The
    -- key is a fixed number of this project's ("crm commit order"), not a hash that may change.
    PERFORM pg_advisory_xact_lock(4352631887301);
    IF current_setting('crm.notification_tx_ctid') = '' THEN
        -- Fired by the INSERT itself (SET CONSTRAINTS ... IMMEDIATE): find the row by key.
        UPDATE notification_transactions
        SET "commitSeq" = nextval('notification_commit_seq'),
            "insertedRows" = current_setting('crm.notification_tx_inserted')::bigint,
            "unreadDelta" = current_setting('crm.notification_tx_unread')::bigint
        WHERE txid = NEW.txid
        RETURNING ctid INTO row_ctid;
    ELSE
        -- By its address: a read of no index page, so no SERIALIZABLE conflict with writers.
        UPDATE notification_transactions
        SET "commitSeq" = nextval('notification_commit_seq'),
            "insertedRows" = current_setting('crm.notification_tx_inserted')::bigint,
            "unreadDelta" = current_setting('crm.notification_tx_unread')::bigint
        WHERE ctid = current_setting('crm.notification_tx_ctid')::tid
        RETURNING ctid INTO row_ctid;
    END IF;
    PERFORM set_config('crm.notification_tx', 'stamped', true),
            set_config('crm.notification_tx_ctid', row_ctid::text, true);
    RETURN NULL;
END;
$$;


--
-- Name: tg_notifications__announce(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.tg_notifications__announce() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    changed bigint;
    inserted bigint := 0;
    unread_delta bigint;
    one_id uuid;
    action text;
    marker text := coalesce(current_setting('crm.notification_tx', true), '');
    row_ctid tid;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*), count(*) FILTER (WHERE NOT "isRead"), min(id::text)::uuid, 'bulk-create'
        INTO changed, unread_delta, one_id, action
        FROM new_rows;
        inserted := changed;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Both transition tables hold the same rows, so "every row went from unread to read"
        -- is "every old row unread and every new row read".
        SELECT n.changed, n.unread - o.unread, n.one_id,
               CASE WHEN n.all_read AND o.all_unread THEN 'mark-all-read' ELSE 'bulk-update' END
        INTO changed, unread_delta, one_id, action
        FROM (SELECT count(*) AS changed, count(*) FILTER (WHERE NOT "isRead") AS unread,
                     min(id::text)::uuid AS one_id, bool_and("isRead") AS all_read
              FROM new_rows) AS n,
             (SELECT count(*) FILTER (WHERE NOT "isRead") AS unread,
                     bool_and(NOT "isRead") AS all_unread
              FROM old_rows) AS o;
    ELSE
        SELECT count(*), -count(*) FILTER (WHERE NOT "isRead"), min(id::text)::uuid, 'bulk-delete'
        INTO changed, unread_delta, one_id, action
        FROM old_rows;
    END IF;

    IF changed = 0 THEN
        RETURN NULL;
    END IF;

    -- The transaction's own row: inserted once (its deferred trigger stamps it at commit),
    -- the statements' sums kept in transaction-local settings until then, so a statement
    -- writes no row version of its own. Settings and row roll back with a savepoint alike.
    IF marker = '' THEN
        -- The sums first: under SET CONSTRAINTS ... IMMEDIATE the commit trigger runs at the
        -- end of the INSERT below.
        PERFORM set_config('crm.notification_tx', 'pending', true),
                set_config('crm.notification_tx_ctid', '', true),
                set_config('crm.notification_tx_inserted', inserted::text, true),
                set_config('crm.notification_tx_unread', unread_delta::text, true);
        INSERT INTO notification_transactions (txid) VALUES (pg_current_xact_id())
        RETURNING ctid INTO row_ctid;
        IF current_setting('crm.notification_tx') = 'pending' THEN
            PERFORM set_config('crm.notification_tx_ctid', row_ctid::text, true);
        END IF;
    ELSIF marker = 'pending' THEN
        PERFORM set_config('crm.notification_tx_inserted',
                           (current_setting('crm.notification_tx_inserted')::bigint
                            + inserted)::text, true),
                set_config('crm.notification_tx_unread',
                           (current_setting('crm.notification_tx_unread')::bigint
                            + unread_delta)::text, true);
    ELSE
        -- Stamped already (SET CONSTRAINTS ... IMMEDIATE ran the commit trigger early).
        UPDATE notification_transactions
        SET "insertedRows" = "insertedRows" + inserted, "unreadDelta" = "unreadDelta" + unread_delta
        WHERE ctid = current_setting('crm.notification_tx_ctid')::tid
        RETURNING ctid INTO row_ctid;
        PERFORM set_config('crm.notification_tx_ctid', row_ctid::text, true);
    END IF;

    -- A transaction whose rows are all gone is no longer needed for catch-up; once the unread
    -- fold has passed it, its row goes. SKIP LOCKED: never wait for another deleter. Only under
    -- read committed, where a row deleted meanwhile is skipped instead of failing.
    IF TG_OP = 'DELETE' AND current_setting('transaction_isolation') = 'read committed' THEN
        DELETE FROM notification_transactions AS t
        WHERE t.txid IN (
            SELECT s.txid
            FROM notification_transactions AS s
            WHERE s.txid IN (SELECT o."createdTxid" FROM old_rows AS o)
              AND s."commitSeq" <= (SELECT max(f."commitSeq") FROM notification_unread_folds AS f)
              AND NOT EXISTS (SELECT FROM notifications AS n WHERE n."createdTxid" = s.txid)
            FOR UPDATE SKIP LOCKED);
    END IF;

    PERFORM pg_notify('notifications', CASE
        WHEN changed = 1 THEN jsonb_build_object(
            'op', lower(TG_OP), 'count', 1, 'id', one_id,
            'seq', nextval('notification_announcement_seq'))
        ELSE jsonb_build_object(
            'op', lower(TG_OP), 'count', changed, 'action', action,
            'seq', nextval('notification_announcement_seq'))
    END::text);
    RETURN NULL;
END;
$$;


--
-- Name: tg_notifications__announce_truncate(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.tg_notifications__announce_truncate() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    row_ctid tid;
BEGIN
    IF coalesce(current_setting('crm.notification_tx', true), '') = '' THEN
        TRUNCATE notification_transactions;
    ELSE
        -- This transaction changed notifications before: its own row stays, emptied (and
        -- TRUNCATE would refuse the table while that row's commit trigger is pending).
        DELETE FROM notification_transactions
        WHERE ctid <> current_setting('crm.notification_tx_ctid')::tid;
        PERFORM set_config('crm.notification_tx_inserted', '0', true),
                set_config('crm.notification_tx_unread', '0', true);
        IF current_setting('crm.notification_tx') = 'stamped' THEN
            UPDATE notification_transactions SET "insertedRows" = 0, "unreadDelta" = 0
            RETURNING ctid INTO row_ctid;
            PERFORM set_config('crm.notification_tx_ctid', row_ctid::text, true);
        END IF;
    END IF;
    INSERT INTO notification_unread_folds ("commitSeq", unread)
    VALUES (nextval('notification_commit_seq'), 0);
    PERFORM pg_notify('notifications', jsonb_build_object(
        'op', 'truncate', 'seq', nextval('notification_announcement_seq'))::text);
    RETURN NULL;
END;
$$;


--
-- Name: tg_tasks__notify_completed(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.tg_tasks__notify_completed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: tg_users__announce_revocation(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.tg_users__announce_revocation() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('user_revocations', '*');
    ELSE
        PERFORM pg_notify('user_revocations', OLD.id::text);
    END IF;
    RETURN NULL;
END;
$$;


--
-- Name: tg_users__normalize_email(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.tg_users__normalize_email() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.email := lower(btrim(NEW.email));
    RETURN NEW;
END;
$$;


--
-- Name: tg_users__revoke_tokens(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.tg_users__revoke_tokens() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW."tokensValidAfter" := clock_timestamp();
    RETURN NEW;
END;
$$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: comments; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.comments (
    id integer NOT NULL,
    "leadId" integer NOT NULL,
    body text NOT NULL,
    "authorEmail" text,
    "createdAt" timestamp with time zone DEFAULT now() NOT NULL,
    "updatedAt" timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT comments_body_check CHECK ((btrim(body) <> ''::text))
);


--
-- Name: comments_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.comments ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.comments_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: leads; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.leads (
    id integer NOT NULL,
    "firstName" text NOT NULL,
    "lastName" text NOT NULL,
    email text,
    phone text,
    company text,
    status text DEFAULT 'new'::text NOT NULL,
    score integer DEFAULT 0 NOT NULL,
    "createdAt" timestamp with time zone DEFAULT now() NOT NULL,
    "updatedAt" timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT "leads_firstName_check" CHECK ((btrim("firstName") <> ''::text)),
    CONSTRAINT "leads_lastName_check" CHECK ((btrim("lastName") <> ''::text))
);


--
-- Name: leads_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.leads ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.leads_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: notification_announcement_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.notification_announcement_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: notification_commit_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.notification_commit_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: notifications; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notifications (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    type public.notification_type NOT NULL,
    title character varying(255) NOT NULL,
    message text NOT NULL,
    "isRead" boolean DEFAULT false NOT NULL,
    "relatedLeadId" integer,
    "createdAt" timestamp with time zone DEFAULT now() NOT NULL,
    "updatedAt" timestamp with time zone DEFAULT now() NOT NULL,
    "createdTxid" xid8 DEFAULT pg_current_xact_id() NOT NULL,
    "insertSeq" bigint NOT NULL
);


--
-- Name: COLUMN notifications."createdTxid"; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.notifications."createdTxid" IS 'Inserting transaction; lets catch-up pagination find rows that committed late.';


--
-- Name: COLUMN notifications."insertSeq"; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.notifications."insertSeq" IS 'Insert order; with the transaction''s commitSeq, the row''s place in commit order.';


--
-- Name: notification_insert_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.notification_insert_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: notification_insert_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.notification_insert_seq OWNED BY public.notifications."insertSeq";


--
-- Name: notification_transactions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notification_transactions (
    txid xid8 NOT NULL,
    "commitSeq" bigint,
    "insertedRows" bigint DEFAULT 0 NOT NULL,
    "unreadDelta" bigint DEFAULT 0 NOT NULL
);


--
-- Name: TABLE notification_transactions; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.notification_transactions IS 'One row per transaction that changed notifications, stamped with its commit order.';


--
-- Name: notification_unread_folds; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notification_unread_folds (
    "commitSeq" bigint NOT NULL,
    unread bigint NOT NULL
);


--
-- Name: TABLE notification_unread_folds; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.notification_unread_folds IS 'Unread notifications counted up to "commitSeq"; the newest row plus later deltas is the count.';


--
-- Name: notification_unread_counts; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.notification_unread_counts AS
 SELECT (0)::smallint AS slot,
    ((unread)::numeric + COALESCE(( SELECT sum(t."unreadDelta") AS sum
           FROM public.notification_transactions t
          WHERE (t."commitSeq" > f."commitSeq")), (0)::numeric)) AS unread
   FROM ( SELECT notification_unread_folds."commitSeq",
            notification_unread_folds.unread
           FROM public.notification_unread_folds
          ORDER BY notification_unread_folds."commitSeq" DESC
         LIMIT 1) f;


--
-- Name: VIEW notification_unread_counts; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON VIEW public.notification_unread_counts IS 'Deprecated: the unread count for servers before 20261201000100; use notification_unread_count.';


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version character varying NOT NULL
);


--
-- Name: tasks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tasks (
    id integer NOT NULL,
    "leadId" integer NOT NULL,
    title text NOT NULL,
    "completedAt" timestamp with time zone,
    "createdAt" timestamp with time zone DEFAULT now() NOT NULL,
    "updatedAt" timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT tasks_title_check CHECK ((btrim(title) <> ''::text))
);


--
-- Name: tasks_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.tasks ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.tasks_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    email text NOT NULL,
    "passwordHash" text NOT NULL,
    "createdAt" timestamp with time zone DEFAULT now() NOT NULL,
    "updatedAt" timestamp with time zone DEFAULT now() NOT NULL,
    "tokensValidAfter" timestamp with time zone,
    CONSTRAINT users_email_check CHECK (((email <> ''::text) AND (email = lower(email))))
);


--
-- Name: notifications insertSeq; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notifications ALTER COLUMN "insertSeq" SET DEFAULT nextval('public.notification_insert_seq'::regclass);


--
-- Name: comments comments_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.comments
    ADD CONSTRAINT comments_pkey PRIMARY KEY (id);


--
-- Name: leads leads_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.leads
    ADD CONSTRAINT leads_pkey PRIMARY KEY (id);


--
-- Name: notification_transactions notification_transactions_commitSeq_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notification_transactions
    ADD CONSTRAINT "notification_transactions_commitSeq_key" UNIQUE ("commitSeq");


--
-- Name: notification_transactions notification_transactions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notification_transactions
    ADD CONSTRAINT notification_transactions_pkey PRIMARY KEY (txid);


--
-- Name: notification_unread_folds notification_unread_folds_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notification_unread_folds
    ADD CONSTRAINT notification_unread_folds_pkey PRIMARY KEY ("commitSeq");


--
-- Name: notifications notifications_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_pkey PRIMARY KEY (id);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: tasks tasks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_pkey PRIMARY KEY (id);


--
-- Name: users users_email_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_email_key UNIQUE (email);


--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);


--
-- Name: comments_lead_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX comments_lead_id_idx ON public.comments USING btree ("leadId");


--
-- Name: notification_transactions_inserted_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notification_transactions_inserted_idx ON public.notification_transactions USING btree ("commitSeq") WHERE ("insertedRows" > 0);


--
-- Name: notifications_created_txid_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notifications_created_txid_idx ON public.notifications USING btree ("createdTxid", "insertSeq");


--
-- Name: notifications_feed_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notifications_feed_idx ON public.notifications USING btree ("createdAt" DESC, id DESC);


--
-- Name: notifications_related_lead_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notifications_related_lead_id_idx ON public.notifications USING btree ("relatedLeadId");


--
-- Name: notifications_unread_feed_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notifications_unread_feed_idx ON public.notifications USING btree ("createdAt" DESC, id DESC) WHERE (NOT "isRead");


--
-- Name: tasks_lead_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_lead_id_idx ON public.tasks USING btree ("leadId");


--
-- Name: comments _100_set_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _100_set_updated_at BEFORE UPDATE ON public.comments FOR EACH ROW EXECUTE FUNCTION public.tg_all__set_updated_at();


--
-- Name: leads _100_set_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _100_set_updated_at BEFORE UPDATE ON public.leads FOR EACH ROW EXECUTE FUNCTION public.tg_all__set_updated_at();


--
-- Name: notifications _100_set_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _100_set_updated_at BEFORE UPDATE ON public.notifications FOR EACH ROW EXECUTE FUNCTION public.tg_all__set_updated_at();


--
-- Name: tasks _100_set_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _100_set_updated_at BEFORE UPDATE ON public.tasks FOR EACH ROW EXECUTE FUNCTION public.tg_all__set_updated_at();


--
-- Name: users _100_set_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _100_set_updated_at BEFORE UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION public.tg_all__set_updated_at();


--
-- Name: notification_transactions _100_stamp_commit; Type: TRIGGER; Schema: public; Owner: -
--

CREATE CONSTRAINT TRIGGER _100_stamp_commit AFTER INSERT ON public.notification_transactions DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.tg_notification_transactions__stamp_commit();


--
-- Name: users _200_normalize_email; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _200_normalize_email BEFORE INSERT OR UPDATE OF email ON public.users FOR EACH ROW EXECUTE FUNCTION public.tg_users__normalize_email();


--
-- Name: users _200_revoke_tokens; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _200_revoke_tokens BEFORE UPDATE OF "passwordHash" ON public.users FOR EACH ROW WHEN ((old."passwordHash" IS DISTINCT FROM new."passwordHash")) EXECUTE FUNCTION public.tg_users__revoke_tokens();


--
-- Name: comments _500_notify_added; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _500_notify_added AFTER INSERT ON public.comments REFERENCING NEW TABLE AS new_comments FOR EACH STATEMENT EXECUTE FUNCTION public.tg_comments__notify_added();


--
-- Name: tasks _500_notify_completed_on_insert; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _500_notify_completed_on_insert AFTER INSERT ON public.tasks REFERENCING NEW TABLE AS new_tasks FOR EACH STATEMENT EXECUTE FUNCTION public.tg_tasks__notify_completed();


--
-- Name: leads _500_notify_created; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _500_notify_created AFTER INSERT ON public.leads REFERENCING NEW TABLE AS new_leads FOR EACH STATEMENT EXECUTE FUNCTION public.tg_leads__notify_created();


--
-- Name: tasks _510_notify_completed_on_update; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _510_notify_completed_on_update AFTER UPDATE ON public.tasks REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks FOR EACH STATEMENT EXECUTE FUNCTION public.tg_tasks__notify_completed();


--
-- Name: leads _510_notify_score_updated; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _510_notify_score_updated AFTER UPDATE ON public.leads REFERENCING OLD TABLE AS old_leads NEW TABLE AS new_leads FOR EACH STATEMENT EXECUTE FUNCTION public.tg_leads__notify_score_updated();


--
-- Name: notifications _900_announce_delete; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _900_announce_delete AFTER DELETE ON public.notifications REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.tg_notifications__announce();


--
-- Name: notifications _900_announce_insert; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _900_announce_insert AFTER INSERT ON public.notifications REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.tg_notifications__announce();


--
-- Name: users _900_announce_revocation_delete; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _900_announce_revocation_delete AFTER DELETE ON public.users FOR EACH ROW EXECUTE FUNCTION public.tg_users__announce_revocation();


--
-- Name: users _900_announce_revocation_truncate; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _900_announce_revocation_truncate AFTER TRUNCATE ON public.users FOR EACH STATEMENT EXECUTE FUNCTION public.tg_users__announce_revocation();


--
-- Name: users _900_announce_revocation_update; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _900_announce_revocation_update AFTER UPDATE OF "passwordHash" ON public.users FOR EACH ROW WHEN ((old."passwordHash" IS DISTINCT FROM new."passwordHash")) EXECUTE FUNCTION public.tg_users__announce_revocation();


--
-- Name: notifications _900_announce_truncate; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _900_announce_truncate AFTER TRUNCATE ON public.notifications FOR EACH STATEMENT EXECUTE FUNCTION public.tg_notifications__announce_truncate();


--
-- Name: notifications _900_announce_update; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _900_announce_update AFTER UPDATE ON public.notifications REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.tg_notifications__announce();


--
-- Name: comments comments_leadId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.comments
    ADD CONSTRAINT "comments_leadId_fkey" FOREIGN KEY ("leadId") REFERENCES public.leads(id) ON DELETE CASCADE;


--
-- Name: notifications notifications_relatedLeadId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT "notifications_relatedLeadId_fkey" FOREIGN KEY ("relatedLeadId") REFERENCES public.leads(id) ON DELETE SET NULL;


--
-- Name: tasks tasks_leadId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT "tasks_leadId_fkey" FOREIGN KEY ("leadId") REFERENCES public.leads(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--

\unrestrict dbmate


--
-- Dbmate schema migrations
--

INSERT INTO public.schema_migrations (version) VALUES
    ('20261126000100'),
    ('20261126000200'),
    ('20261127000100'),
    ('20261127000200'),
    ('20261201000100'),
    ('20261201000200');

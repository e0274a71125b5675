-- Emails and webhooks record the job's row as it was when it finished
-- (`job_row`, the row itself, not a rendering of it); the senders render it
-- with the same serializer as the API and the WebSocket, so the job's JSON
-- has one home (server.jobs.serializers). Rows queued before this migration
-- keep their old, already-rendered shape and are sent as they are.

CREATE OR REPLACE FUNCTION frameflow_enqueue_job_email() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_log (user_id, job_id, event, recipient, facts)
    SELECT u.id, NEW.id, 'job.' || NEW.status, u.email,
           jsonb_build_object(
               'job_row', to_jsonb(NEW),
               'filename', (SELECT v.filename FROM videos v WHERE v.id = NEW.video_id))
    FROM users u
    WHERE u.id = NEW.user_id AND u.email_notifications;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION frameflow_enqueue_job_webhooks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event, data)
    SELECT w.id, 'job.' || NEW.status, jsonb_build_object('job_row', to_jsonb(NEW))
    FROM webhooks w
    WHERE w.user_id = NEW.user_id AND ('job.' || NEW.status) = ANY (w.events);
    RETURN NULL;
END;
$$;

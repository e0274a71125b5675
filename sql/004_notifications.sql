-- Email on finished jobs: a per-user switch and the outbox that is also the log.

ALTER TABLE users ADD COLUMN email_notifications boolean NOT NULL DEFAULT true;

-- One row per email. Rows are written by the trigger below, inside the very
-- transaction that ends the job, so a process that dies right after the
-- commit still owes (and later sends) the mail; a rolled-back finish owes none.
-- `facts` is a snapshot of the job as it ended: the mail can still be written
-- after the job or its video has been deleted. `job_id` has no foreign key
-- for the same reason.
CREATE TABLE notification_log (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    job_id          uuid,
    event           text NOT NULL,
    recipient       text NOT NULL,
    subject         text,  -- set when the message is composed (first attempt)
    facts           jsonb NOT NULL,
    -- pending: not tried yet · sending: claimed by a sender until next_attempt_at
    -- (due again after that, should the sender have died) · retry: failed, due
    -- again at next_attempt_at · sent · not_sent: no SMTP configured, only
    -- logged · failed: attempts used up
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'retry', 'sent', 'not_sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    error           text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
-- The sender's claim: due rows that still owe a mail.
CREATE INDEX notification_log_due_idx ON notification_log (next_attempt_at)
    WHERE status IN ('pending', 'sending', 'retry');
CREATE INDEX notification_log_user_idx ON notification_log (user_id, created_at DESC);

CREATE FUNCTION frameflow_enqueue_job_email() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_log (user_id, job_id, event, recipient, facts)
    SELECT u.id, NEW.id, 'job.' || NEW.status, u.email,
           jsonb_build_object(
               'job_id', NEW.id,
               'video_id', NEW.video_id,
               'operation', NEW.operation,
               'status', NEW.status,
               'error', NEW.error,
               'attempts', NEW.attempts,
               'finished_at', NEW.finished_at,
               'filename', (SELECT v.filename FROM videos v WHERE v.id = NEW.video_id))
    FROM users u
    WHERE u.id = NEW.user_id AND u.email_notifications;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_enqueue_email
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION frameflow_enqueue_job_email();

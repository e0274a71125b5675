-- Webhooks and their deliveries (the outbox, which is also the delivery log).

CREATE TABLE webhooks (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url        text NOT NULL,
    events     text[] NOT NULL,
    -- Kept in clear: signing needs it. Shown to its owner once, at creation.
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_user_idx ON webhooks (user_id, created_at DESC);

-- One row per event per webhook, written by the trigger below in the very
-- transaction that ends the job (nothing is lost if the process dies after
-- the commit). `data` is the job as it ended; the body sent is built from
-- this row alone, so every retry carries the same body.
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event           text NOT NULL,
    data            jsonb NOT NULL,
    -- pending · sending (claimed until next_attempt_at) · retry · delivered · failed
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'retry', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    response_status integer,
    error           text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'sending', 'retry');
CREATE INDEX webhook_deliveries_hook_idx ON webhook_deliveries (webhook_id, created_at DESC);

CREATE FUNCTION frameflow_enqueue_job_webhooks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event, data)
    SELECT w.id, 'job.' || NEW.status,
           jsonb_build_object(
               'job', jsonb_build_object(
                   'id', NEW.id,
                   'video_id', NEW.video_id,
                   'operation', NEW.operation,
                   'status', NEW.status,
                   'error', NEW.error,
                   'attempts', NEW.attempts,
                   'created_at', NEW.created_at,
                   'finished_at', NEW.finished_at))
    FROM webhooks w
    WHERE w.user_id = NEW.user_id AND ('job.' || NEW.status) = ANY (w.events);
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_enqueue_webhooks
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'failed', 'canceled')
          AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION frameflow_enqueue_job_webhooks();

-- The audit log (issue 10 §4): who did what, append-only.
--
-- No foreign keys: a row outlives the account, key, video or hook it names.
-- A trigger refuses every UPDATE and every DELETE except the retention
-- delete, which the sweep runs in a transaction after
--   SET LOCAL frameflow.audit_delete_before = '<timestamptz>'
-- and which may then delete only rows older than that instant. TRUNCATE is
-- refused too. (A database superuser can always drop the trigger; the trigger
-- keeps the application — and any bug in it — from rewriting history.)

CREATE TABLE audit_log (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_type       text NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system', 'anonymous')),
    actor_user_id    uuid,
    actor_api_key_id uuid,
    action           text NOT NULL,
    target_type      text,
    target_id        text,
    outcome          text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    client_ip        text,
    user_agent       text,
    request_id       text,
    detail           jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC, id DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_user_id, created_at DESC);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, created_at DESC);
CREATE INDEX audit_log_action_idx ON audit_log (action, created_at DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cutoff text := current_setting('frameflow.audit_delete_before', true);
BEGIN
    IF TG_OP = 'DELETE' AND cutoff IS NOT NULL AND cutoff <> ''
       AND OLD.created_at < cutoff::timestamptz THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE FUNCTION audit_log_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (TRUNCATE refused)'
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_no_truncate();

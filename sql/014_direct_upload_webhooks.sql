-- Webhooks hear of a finished direct upload (`direct_upload.completed`), queued
-- like job deliveries: by a trigger, in the transaction that marks the direct
-- upload done (the video's own), so none is lost to a crash. The row is
-- recorded as it is (less the hash of its URL's secret) and the sender renders
-- it with the API's serializer.
CREATE FUNCTION frameflow_enqueue_direct_upload_webhooks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event, data)
    SELECT w.id, 'direct_upload.completed',
           jsonb_build_object('direct_upload_row', to_jsonb(NEW) - 'token_sha256')
    FROM webhooks w
    WHERE w.user_id = NEW.user_id AND 'direct_upload.completed' = ANY (w.events);
    RETURN NULL;
END;
$$;

CREATE TRIGGER direct_uploads_enqueue_webhooks
    AFTER UPDATE OF status ON direct_uploads
    FOR EACH ROW
    WHEN (NEW.status = 'done' AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION frameflow_enqueue_direct_upload_webhooks();

-- The W3C trace context (a `traceparent` header value) of the request that
-- queued the job, when tracing is on: the worker that runs the job, on
-- whatever instance, starts its attempt span as a child of it, so upload →
-- job → output fetch is one trace. NULL when tracing was off.
ALTER TABLE jobs ADD COLUMN traceparent text;

-- Quota held by a queued or running job: its estimated outputs, reserved in
-- `users.used_bytes` when the job is queued so that quick job creation cannot
-- overshoot the quota, and settled (replaced by the real size, or released)
-- in the transaction that finishes the job. Only server.quota.ledger writes it.
ALTER TABLE jobs ADD COLUMN reserved_bytes bigint NOT NULL DEFAULT 0
    CHECK (reserved_bytes >= 0);

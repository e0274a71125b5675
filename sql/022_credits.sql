-- Credits: a per-user account row and its append-only ledger.
--
-- `balance` is what the user may still spend; `held` is what open holds have
-- set aside (a generation in flight). Every change of either is one
-- `credit_transactions` row written in the same transaction as the UPDATE of
-- the account, so SUM(balance_delta) = balance and SUM(held_delta) = held at
-- every commit. Only server.credits.ledger writes these tables; the CHECKs
-- are the last line of defence against a balance below zero.

CREATE TABLE credit_accounts (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    balance    bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    held       bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per hold: held → captured | released (server.credits.ledger is its
-- state machine; the guarded UPDATEs make capture and release happen once).
CREATE TABLE credit_holds (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount      bigint NOT NULL CHECK (amount >= 0),
    status      text NOT NULL DEFAULT 'held'
                CHECK (status IN ('held', 'captured', 'released')),
    captured    bigint CHECK (captured >= 0 AND captured <= amount),
    reference   text,  -- what the hold pays for, e.g. 'generation:<id>'
    created_at  timestamptz NOT NULL DEFAULT now(),
    settled_at  timestamptz
);
CREATE INDEX credit_holds_open_idx ON credit_holds (user_id) WHERE status = 'held';

CREATE TABLE credit_transactions (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          text NOT NULL
                  CHECK (kind IN ('grant', 'hold', 'capture', 'release', 'refund', 'adjustment')),
    -- The effect on the account: balance and held move by these amounts.
    balance_delta bigint NOT NULL,
    held_delta    bigint NOT NULL,
    -- The account right after this row (a statement needs no running sum).
    balance_after bigint NOT NULL CHECK (balance_after >= 0),
    held_after    bigint NOT NULL CHECK (held_after >= 0),
    hold_id       uuid,  -- no foreign keys: SET NULL would rewrite the ledger
    actor_id      uuid,  -- the admin of a grant or adjustment
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_transactions_user_idx ON credit_transactions (user_id, created_at DESC, id DESC);

-- Append-only: the ledger is never rewritten.
CREATE FUNCTION frameflow_credit_transactions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_transactions is append-only';
END;
$$;

CREATE TRIGGER credit_transactions_append_only
    BEFORE UPDATE ON credit_transactions
    FOR EACH ROW EXECUTE FUNCTION frameflow_credit_transactions_append_only();

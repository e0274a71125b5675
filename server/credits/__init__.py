"""Credits: the per-user balance generations are paid from, and its ledger."""

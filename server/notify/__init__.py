"""Email to a job's owner when it ends: composing, sending, and the outbox."""

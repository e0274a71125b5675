"""PostgreSQL: the pool, migrations and every SQL statement (repository modules)."""

"""The service: the one process that owns the database and opens it to other programs (rules §10)."""

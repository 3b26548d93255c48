"""The DuckDB file: opening it, its schema, backups, the audit trail, and SQL literals."""

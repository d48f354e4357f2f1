"""Statement scanners for SQL dumps: the shared scanner (common),
MySQL/MariaDB (mysql) and PostgreSQL (pg)."""

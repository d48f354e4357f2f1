"""The servers a dump is loaded into: MariaDB and PostgreSQL,
throwaway or existing, and PostgreSQL's checks (pgchecks)."""

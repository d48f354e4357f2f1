"""pg_dump archives: header and table of contents (archive), the
custom format's blocks (custom), the tar format (tar) and table data (data)."""

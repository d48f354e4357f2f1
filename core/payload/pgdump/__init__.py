"""pg_dump archives: header and table of contents (archive), the custom format's
blocks (custom), the tar format (tar), table data (data), and the payload checks
that turn what they read into the payload's findings (judge)."""

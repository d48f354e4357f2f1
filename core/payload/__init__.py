"""What the plaintext is and whether it is complete: the inspector
(inspector) and pg_dump archives read to the last block (pgdump/, on streamparse)."""

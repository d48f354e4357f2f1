"""What the plaintext is and whether it is complete: the inspector (inspector) and its
findings (info); binary payloads read to their end, looked up by format (registry):
xbstream, and pg_dump archives (pgdump/, on streamparse)."""

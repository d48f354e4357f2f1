"""Key rotation (issue 13): re-wrap each backup's data key for a new RSA key pair,
create-only, journaled, resumable; the producer's objects are only ever read."""

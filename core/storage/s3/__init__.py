"""S3 access: one pinned, resumable, self-checking stream per object version.

* Every read is pinned to a VersionId (taken from HEAD when the caller gave
  none), so a new upload during the read can never mix two versions.
* A dropped connection resumes with ``Range: bytes=N-`` from the last byte
  received; a server that ignores Range (200 instead of 206) is detected and
  the already-received prefix is skipped, never appended twice.
* boto3's response checksums are skipped by botocore for third-party stores
  and composite checksums (reliability.md §1.10), so the stream computes its
  own MD5 and compares it with a single-part ETag at the end.

The client and the addresses (client), boto's errors as typed errors (errors),
one object version and its stream (object), what is retried and how (retry).
"""

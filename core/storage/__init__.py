"""Where a backup's bytes come from: the ``Source`` protocol and local files
(source), S3 with retry and resume (s3), listing and pairing (listing), naming rules
(naming), and ``locate`` (a URI or a listed version to a ``Source``). Knows nothing of
keys or envelopes."""

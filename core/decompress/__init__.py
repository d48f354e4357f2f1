"""Streaming decompressors with strict end-of-stream checks: the reader contract and
statistics (base), gzip/bzip2/xz/zstd (readers), the block-parallel bzip2 decoder
(the bzip2 package) and the table of which reader reads which format (registry)."""

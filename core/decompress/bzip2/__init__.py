"""Parallel bzip2 decoding on the stdlib ``bz2`` module, keeping every check.

libbz2 decodes one block at a time on one core (~19 s/GiB here), but bzip2
blocks are independent: each starts with the bit-aligned 48-bit magic
0x314159265359 and a CRC of its own output, and the end-of-stream marker
0x177245385090 carries the combined CRC of the stream's blocks. So the
compressed stream is cut at block boundaries (scanner.py, on the reading
thread), each block is rebuilt as a standalone one-block stream and
handed to a small pool of threads (libbz2 releases the GIL), and the output
is delivered in order with a bounded number of blocks in flight.

Nothing is weakened: libbz2 checks each block's CRC inside its rebuilt
stream; the reader folds the block CRCs into the combined CRC and compares it
with the stored one at each end-of-stream marker; input that ends before that
marker is :class:`TruncatedBackup`; bytes after the last stream that are not
zero padding are rejected (the sequential reader's policy); concatenated
streams (pbzip2, lbzip2, ``cat a.bz2 b.bz2``) are counted as members.

A 48-bit pattern can also occur by chance inside compressed data (~2^-45
per byte). Such a false cut makes the rebuilt block fail to decode; the
reader then searches that block's true end exactly, trying each candidate
boundary in turn with a discarding decode, and only reports corruption when
no candidate decodes (as the sequential decoder would fail there too). A
worker never delivers output before its block's CRC has been checked, so a
failed attempt leaves no trace in the output.

The layers, bottom up: block.py rebuilds and decodes one block; scanner.py
cuts the input into blocks and end markers; pool.py runs the decoding threads;
reader.py ties them together and makes the stream-level checks.
"""

from .pool import default_workers
from .reader import ParallelBzip2Reader

__all__ = ["ParallelBzip2Reader", "default_workers"]

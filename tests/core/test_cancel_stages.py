"""Cancel is one contract: every stage stops on the job's CancelToken (issue 11).

A real backup (a dump, compressed by gzip or bzip2, encrypted by openssl enc) is
restored, and the job's token is cancelled from inside one stage once that stage
has handled a few MiB: the download, the decryption, the decompression (gzip, and
bzip2 through the parallel block pool), the dump check or the write. The run must
return the cancelled outcome within 2 s, leave nothing at the destination (no
file, no temp file) and no thread it started. The tripwire only calls cancel();
the stage under test still does the real work and has to notice on its own.
Each decompressor is also checked on its own, with no thread boundary around it.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.dumps import random_dump
from fixtures.pipelines import openssl_variant
from sealcheck.core.decompress import bzip2 as parallel
from sealcheck.core.decompress.bzip2 import ParallelBzip2Reader
from sealcheck.core.decompress.readers import GzipReader
from sealcheck.core.decompress.registry import open_decompressor
from sealcheck.core.decrypt.openssl.stream import DecryptReader
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.errors import Cancelled, ExitCode
from sealcheck.core.payload.inspector import PayloadInspector
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.plumbing.atomic import AtomicWriter
from sealcheck.core.plumbing.progress import CancelToken
from sealcheck.core.plumbing.streams import BytesReader, ChainReader, Reader, read_exact
from sealcheck.core.records.identity import SourceIdentity
from sealcheck.core.records.report import Report
from sealcheck.core.storage.source import LocalFile

MiB = 1 << 20
PLAINTEXT = 24 * MiB  # random bytes as base64 text: compression keeps most of it
TRIP_AFTER = 2 * MiB  # the stage has surely started and is far from its end
STOP_WITHIN = 2.0  # seconds from cancel() to run() returning


@dataclass
class Seed:
    data: Path
    passphrase: bytes
    size: int


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_dump(tmp_path_factory.mktemp("dump") / "dump.sql", PLAINTEXT)


def _seed(dump: Path, out: Path, compress: str, name: str) -> Seed:
    b = openssl_variant(dump, out, compress=compress, name=name)
    assert b.passphrase_file is not None
    return Seed(b.data, b.passphrase_file.read_bytes(), b.data.stat().st_size)


@pytest.fixture(scope="module")
def gzipped(dump: Path, tmp_path_factory: pytest.TempPathFactory) -> Seed:
    return _seed(dump, tmp_path_factory.mktemp("gz"), "gzip -c", "dump.sql.gz.enc")


@pytest.fixture(scope="module")
def bzipped(dump: Path, tmp_path_factory: pytest.TempPathFactory) -> Seed:
    # 100k blocks: many blocks in flight in the parallel pool when the cancel comes.
    return _seed(dump, tmp_path_factory.mktemp("bz2"), "bzip2 -c -1", "dump.sql.bz2.enc")


class Tripwire:
    """Counts the bytes one stage handled and cancels the job once it passes ``after``."""

    def __init__(self, token: CancelToken, after: int) -> None:
        self.token = token
        self.after = after
        self.seen = 0
        self.at: float | None = None

    def count(self, n: int) -> None:
        self.seen += n
        if self.at is None and self.seen >= self.after:
            self.at = time.monotonic()
            self.token.cancel()


class _TrippingReader:
    def __init__(self, up: Reader, trip: Tripwire) -> None:
        self._up = up
        self._trip = trip

    def read(self, n: int = -1, /) -> bytes:
        b = self._up.read(n)
        self._trip.count(len(b))
        return b


class TrippingSource:
    """The real local file as the source; its opened stream is the fetch stage's input."""

    def __init__(self, path: Path, trip: Tripwire) -> None:
        self._file = LocalFile(path)
        self._trip = trip
        self.name = self._file.name

    def identity(self) -> SourceIdentity:
        return self._file.identity()

    def read_range(self, start: int, length: int) -> bytes:
        return self._file.read_range(start, length)

    def open(self) -> Reader:
        return _TrippingReader(self._file.open(), self._trip)


def _trip_reads(mp: pytest.MonkeyPatch, cls: type[Any], trip: Tripwire) -> None:
    real = cls.read

    def read(self: Any, n: int = -1, /) -> bytes:
        b: bytes = real(self, n)
        trip.count(len(b))
        return b

    mp.setattr(cls, "read", read)


def _trip_sink(mp: pytest.MonkeyPatch, cls: type, method: str, trip: Tripwire) -> None:
    real = getattr(cls, method)

    def sink(self: Any, data: bytes) -> Any:
        trip.count(len(data))
        return real(self, data)

    mp.setattr(cls, method, sink)


Arm = Callable[[pytest.MonkeyPatch, Tripwire], None]
STAGES: dict[str, Arm] = {
    "fetch": lambda mp, trip: None,  # the source itself trips (TrippingSource)
    "decrypt": lambda mp, trip: _trip_reads(mp, DecryptReader, trip),
    "decompress-gzip": lambda mp, trip: _trip_reads(mp, GzipReader, trip),
    "decompress-bzip2": lambda mp, trip: _trip_reads(mp, ParallelBzip2Reader, trip),
    "payload": lambda mp, trip: _trip_sink(mp, PayloadInspector, "feed", trip),
    "write": lambda mp, trip: _trip_sink(mp, AtomicWriter, "write", trip),
}


@pytest.fixture
def own_threads() -> Iterator[Callable[[], list[threading.Thread]]]:
    """The threads started since the test began that are still alive."""
    before = set(threading.enumerate())
    yield lambda: [t for t in threading.enumerate() if t not in before and t.is_alive()]


@pytest.mark.parametrize(
    ("stage", "compressor"),
    [
        ("fetch", "gzip"),
        ("decrypt", "gzip"),
        ("decompress-gzip", "gzip"),
        ("payload", "gzip"),
        ("write", "gzip"),
        ("fetch", "bzip2"),
        ("decompress-bzip2", "bzip2"),
        ("write", "bzip2"),
    ],
)
def test_cancel_at_each_stage_stops_fast_and_leaves_nothing(
    stage: str,
    compressor: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    own_threads: Callable[[], list[threading.Thread]],
) -> None:
    seed: Seed = request.getfixturevalue("gzipped" if compressor == "gzip" else "bzipped")
    # The block-parallel pool whatever the machine's core count (one core: sequential).
    monkeypatch.setattr(parallel, "default_workers", lambda: 2)
    token = CancelToken()
    trip = Tripwire(token, TRIP_AFTER)
    STAGES[stage](monkeypatch, trip)
    dest_dir = tmp_path / "restored"
    dest_dir.mkdir()
    job = Job(
        data=TrippingSource(seed.data, trip) if stage == "fetch" else LocalFile(seed.data),
        secrets=Secrets(passphrase=bytearray(seed.passphrase)),
        operation="restore",
        destination=dest_dir / "dump.sql",
        cancel=token,
    )

    report: Report = run(job)
    returned = time.monotonic()

    assert trip.at is not None, f"the {stage} stage never handled {TRIP_AFTER} bytes"
    assert returned - trip.at < STOP_WITHIN, f"{stage}: {returned - trip.at:.2f} s to stop"
    assert not report.ok
    assert report.error is not None
    assert (report.error.kind, report.error.exit_code) == ("Cancelled", int(ExitCode.CANCELLED))
    # The stage stopped at the cancel, not at its end.
    whole = seed.size if stage == "fetch" else PLAINTEXT
    assert trip.seen < whole // 2, f"{stage} went on to {trip.seen} of {whole} bytes"
    assert list(dest_dir.iterdir()) == []
    assert own_threads() == []


COMPRESSORS = {
    "gzip": ["gzip", "-c"],
    "bzip2": ["bzip2", "-c", "-1"],
    "xz": ["xz", "-c", "-1"],
    "zstd": ["zstd", "-q", "-c"],
    "none": ["cat"],
}


@pytest.mark.parametrize("fmt", sorted(COMPRESSORS))
def test_each_decompressor_takes_the_token(
    fmt: str,
    dump: Path,
    monkeypatch: pytest.MonkeyPatch,
    own_threads: Callable[[], list[threading.Thread]],
) -> None:
    """Cancelled between two reads, a decompressor raises Cancelled at the next one;
    the parallel bzip2 pool's threads end on the token alone, before any close()."""
    monkeypatch.setattr(parallel, "default_workers", lambda: 2)
    plain = dump.read_bytes()[: 6 * MiB]
    blob = subprocess.run(COMPRESSORS[fmt], input=plain, capture_output=True, check=True).stdout
    up = BytesReader(blob)
    head = read_exact(up, 512)
    token = CancelToken()
    d = open_decompressor(head, ChainReader(head, up), obj="x", cancel=token)
    try:
        assert d.read(MiB)
        token.cancel()
        with pytest.raises(Cancelled):
            d.read(MiB)
        deadline = time.monotonic() + STOP_WITHIN
        while own_threads() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert own_threads() == []
    finally:
        close = getattr(d, "close", None)
        if close is not None:
            close()

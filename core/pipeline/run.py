"""One function composes the stages: source → decrypt → decompress → sinks.

Threads: the fetch thread reads the object and hashes the ciphertext; the
decode thread decrypts and decompresses; the calling thread hashes the
plaintext, inspects the payload and writes the destination. Bounded queues
between them keep memory constant whatever the backup's size.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..decompress.registry import open_decompressor
from ..decrypt.opener import Opened, OpenRequest
from ..decrypt.openssl.stream import first_format
from ..decrypt.registry import opener_for
from ..errors import (
    Cancelled,
    IntegrityError,
    Layer,
    SealcheckError,
    SizeLimitExceeded,
    UnsupportedFormat,
)
from ..formats import Fmt, sniff
from ..payload.info import PayloadInfo, require_judged
from ..payload.inspector import PayloadInspector
from ..physical.layout import NEED_MORE, container
from ..plumbing.atomic import AtomicWriter
from ..plumbing.progress import Meter
from ..plumbing.streams import CHUNK, ChainReader, Prefetch, Reader, Tally, read_exact
from ..records.report import ErrorInfo, Report
from ..version import __version__
from .job import Job
from .proof import (
    Evidence,
    decompress_evidence,
    decompress_partial,
    payload_evidence,
    source_partial,
    source_result,
)
from .sidecars import compare as compare_sidecars
from .sidecars import wants_md5

# A physical backup's check (physical/, pipeline/physical.py: its members' layers, its
# pages) and the folder writer of restore --extract load when a run needs them: a
# verify of a logical dump imports neither (issue 17, start-up is part of the job).
if TYPE_CHECKING:
    from ..physical.check import PhysicalCheck
    from ..physical.extract import FolderWriter


class _HashingReader:
    def __init__(self, up: Reader, meter: Meter, stage: str, *, md5: bool = False) -> None:
        self._up = up
        self.sha256 = hashlib.sha256()
        # Only for a sidecar that carries an MD5 (md5sum output, a manifest's md5).
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self.bytes = 0
        self._meter = meter
        self._stage = stage

    def read(self, n: int = -1, /) -> bytes:
        b = self._up.read(n)
        if b:
            self.sha256.update(b)
            if self.md5 is not None:
                self.md5.update(b)
            self.bytes += len(b)
            self._meter.add(self._stage, len(b))
        else:
            self.eof = True
        return b

    eof = False


class _Fetch:
    """The download stage: started only once the key is known to fit, so a
    wrong key costs two small probes, not megabytes of download."""

    def __init__(self, job: Job, meter: Meter, closers: list[Callable[[], None]]) -> None:
        self.raw = job.data.open()
        md5 = wants_md5(job.sidecars, job.data.name)
        self.hashing = _HashingReader(self.raw, meter, "download", md5=md5)
        self.reader = Prefetch(self.hashing, job.cancel, name="sealcheck-fetch")
        closers.append(self.reader.close)

    def record(self, ev: _Evidence) -> None:
        """The source layer; also recorded when a later layer fails, since
        every byte was still downloaded and hashed."""
        h = self.hashing
        ev.layers["source"] = source_result(h.sha256.hexdigest(), h.bytes, self.raw)

    def partial(self, size: int | None) -> str:
        """What the download did when the run stopped before its end."""
        return source_partial(self.hashing.bytes, size)


class _Evidence(Evidence):
    """The evidence, plus the download stage once it has started (run.py owns it)."""

    def __init__(self) -> None:
        super().__init__()
        self.fetch: _Fetch | None = None


def run(job: Job) -> Report:
    """Run a verify or restore job; errors become part of the report."""
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    ev = _Evidence()
    error: SealcheckError | None = None
    try:
        _run(job, ev)
    except SealcheckError as exc:
        error = exc
    finally:
        job.secrets.wipe()
    return Report(
        operation=job.operation,
        source=ev.source,
        wrapped_key=ev.wrapped,
        ok=error is None,
        layers=ev.result_layers(error, job.operation),
        formats=tuple(ev.formats),
        error=ErrorInfo.from_exc(error) if error else None,
        started_at=started,
        duration_s=round(time.monotonic() - t0, 3),
        sealcheck_version=__version__,
        destination=str(job.destination) if job.destination else None,
        warnings=tuple(ev.warnings),
    )


def _run(job: Job, ev: _Evidence) -> None:
    src = job.data
    ident = src.identity()
    ev.source = ident
    if ident.size == 0:
        raise UnsupportedFormat("the object is empty (0 bytes)", obj=src.name, layer=Layer.SOURCE)
    head = src.read_range(0, 4096)
    fmt = sniff(head)
    meter = Meter(job.progress)
    meter.stage("download", ident.size, is_input=True)
    writer: AtomicWriter | None = None
    folder: FolderWriter | None = None
    if job.operation == "restore" and job.extract:
        assert job.destination is not None
        from ..physical.extract import FolderWriter  # restore --extract only (see above)

        folder = FolderWriter(job.destination, max_bytes=job.max_disk_bytes, obj=src.name)
    elif job.operation == "restore":
        assert job.destination is not None
        writer = AtomicWriter(job.destination, overwrite=job.overwrite)
    closers: list[Callable[[], None]] = []
    try:
        opened = _open_envelope(job, ev, fmt, head, meter, closers)
        decrypted = opened.reader
        first = read_exact(decrypted, 512)
        if not first:
            raise UnsupportedFormat("the decrypted data is empty", obj=src.name, layer=Layer.CIPHER)
        inner = sniff(first)
        ev.formats.append(inner.value if inner else first_format(first))
        try:
            decomp = open_decompressor(
                first, ChainReader(first, decrypted), obj=src.name, cancel=job.cancel
            )
        except SealcheckError as exc:
            # Every failure names its layer in the report (an unsupported
            # compressor is a decompress-layer failure).
            if exc.layer is None:
                exc.layer = Layer.DECOMPRESS
            raise
        meter.stage("decompress")
        counted = _Counting(decomp, meter, "decompress")
        ev.partial["decompress"] = lambda: decompress_partial(decomp, counted.bytes, counted.eof)
        decode = Prefetch(counted, job.cancel, name="sealcheck-decode")
        closers.append(decode.close)
        stop_decomp = getattr(decomp, "close", None)
        if stop_decomp is not None:  # a decoder with its own workers to stop: after the
            closers.append(stop_decomp)  # decode thread, which reads it, has ended
        payload = _consume(job, decode, writer, meter, ev, folder)
        # Every byte went through: the envelope layers are proved even if the
        # payload check below fails.
        opened.done()
        decompress_evidence(ev, decomp)
        try:
            if payload.physical is not None:
                from .physical import payload_info  # a physical backup only (see above)

                done = payload.physical.finish()
                payload.info = payload_info(payload.physical, done)
            else:
                payload.info = payload.inspector.finish()
        finally:
            ev.formats.append(
                payload.physical.container if payload.physical else payload.inspector.info.kind
            )
        mismatch = _sidecar_evidence(job, ev, payload.sha256, payload.bytes)
        if job.extra_sink is not None and mismatch is None:
            job.extra_sink.finish()  # (a restore test commits its load here)
        payload_evidence(ev, payload.info)
        if payload.physical is not None and payload.physical.result is not None:
            from .physical import physical_evidence  # a physical backup only (see above)

            physical_evidence(ev, payload.physical.result, job.secrets.xbcrypt)
        if mismatch is not None:
            raise mismatch
        if job.strict:
            require_judged(payload.info, src.name)
        ev.ok(
            "hashes",
            "SHA-256 of the object and of the restored plaintext",
            ciphertext_sha256=ev.layers["source"].details.get("sha256")
            if "source" in ev.layers
            else None,
            plaintext_sha256=payload.sha256,
            plaintext_bytes=payload.bytes,
        )
        if writer is not None:
            writer.commit()
            ev.ok(
                "destination",
                f"written atomically to {job.destination} and synced to disk",
                bytes=writer.bytes,
            )
            writer = None
        if folder is not None:
            if payload.physical is None:
                raise UnsupportedFormat(
                    "--extract writes the files of a physical backup (xbstream, or a tar of its "
                    "folder); this backup "
                    f"is {payload.info.kind}: restore it to a file without --extract",
                    obj=src.name,
                    layer=Layer.DESTINATION,
                )
            folder.commit()
            from .physical import destination_result  # restore --extract only (see above)

            ev.layers["destination"] = destination_result(folder)
            folder = None
        if payload.into is not None:  # a restore test's sandbox: every layer verified
            payload.into.commit()
    except BaseException as exc:
        if writer is not None:
            writer.abort()
        if folder is not None:
            folder.abort()
        fetch = ev.fetch
        if fetch is not None and fetch.hashing.eof and "source" not in ev.layers:
            fetch.record(ev)
        if isinstance(exc, SealcheckError):
            raise
        if isinstance(exc, KeyboardInterrupt):
            raise Cancelled() from None
        raise
    finally:
        for close in closers:
            close()
        meter.finish()


def _sidecar_evidence(
    job: Job, ev: _Evidence, plaintext_sha256: str, plaintext_bytes: int
) -> IntegrityError | None:
    """The sidecars' checksums and sizes against the object as read, on the source
    layer ("sidecar X.sha256: SHA-256 matches"); the first that does not hold."""
    fetch, src = ev.fetch, ev.layers.get("source")
    if not job.sidecars or fetch is None or src is None:
        return None
    h = fetch.hashing
    check = compare_sidecars(
        job.sidecars,
        job.data.name,
        sha256=h.sha256.hexdigest(),
        md5=h.md5.hexdigest() if h.md5 is not None else None,
        size=h.bytes,
        plaintext_sha256=plaintext_sha256,
        plaintext_bytes=plaintext_bytes,
    )
    proved = "; ".join([src.proved, *check.proved])
    ev.set("source", src.status, proved, **src.details, sidecars=check.results)
    return check.mismatch


class _Counting(Tally):
    def __init__(self, up: Reader, meter: Meter, stage: str) -> None:
        super().__init__(up)
        self._meter = meter
        self._stage = stage

    def read(self, n: int = -1, /) -> bytes:
        b = super().read(n)
        if b:
            self._meter.add(self._stage, len(b))
        return b


@dataclass
class _Consumed:
    inspector: PayloadInspector
    sha256: str
    bytes: int
    info: PayloadInfo = field(default_factory=PayloadInfo)
    physical: PhysicalCheck | None = None
    into: FolderWriter | None = None  # the restore test's folder (job.physical_into)


def _consume(
    job: Job,
    decode: Reader,
    writer: AtomicWriter | None,
    meter: Meter,
    ev: _Evidence,
    folder: FolderWriter | None = None,
) -> _Consumed:
    inspector = PayloadInspector(obj=job.data.name)
    # A physical backup (xbstream, or a tar of its folder) is read by its own check:
    # members, layers, pages.
    physical: PhysicalCheck | None = None
    sink: PhysicalCheck | PayloadInspector = inspector
    into: FolderWriter | None = None
    h = hashlib.sha256()
    total = seen = 0
    limit = job.max_output_bytes
    meter.set_current("restore" if writer else "verify")
    ev.partial["payload"] = lambda: (
        f"inspected the first {seen} bytes of the dump; its end, where a complete dump "
        "says so, was not reached"
        if seen
        else None
    )
    kind: str | None = None
    while True:
        job.cancel.check()
        chunk = decode.read(CHUNK)
        if total == 0:
            chunk, kind = _physical_head(chunk, decode, job)
        if not chunk:
            break
        total += len(chunk)
        if limit is not None and total > limit:
            raise SizeLimitExceeded(
                f"the plaintext exceeds the limit of {limit} bytes (--max-output); stopped "
                "there and nothing was kept. A decompression bomb, or a larger backup than "
                "expected: raise the limit to read it all",
                obj=job.data.name,
            )
        h.update(chunk)
        if kind is not None:
            from .physical import new_check, physical_partial  # a physical backup (see above)

            if folder is None and job.physical_into is not None:
                folder = into = job.physical_into(kind)
            physical = sink = new_check(
                ev, job.secrets.xbcrypt, job.data.name, folder, job.max_disk_bytes, limit, kind
            )
            ev.partial.update(physical_partial(physical))
            kind = None
        sink.feed(chunk)
        seen = total
        if writer is not None:
            writer.write(chunk)
        if job.extra_sink is not None:
            job.extra_sink.feed(chunk)
    return _Consumed(inspector, h.hexdigest(), total, physical=physical, into=into)


def _physical_head(chunk: bytes, decode: Reader, job: Job) -> tuple[bytes, str | None]:
    """The plaintext's first bytes, and the container of the physical backup they
    start, if any: a tar's first file, which decides, may follow a few folders."""
    head = chunk
    while (kind := container(head)) == NEED_MORE:
        job.cancel.check()
        more = decode.read(CHUNK)
        if not more:
            return head, container(head, ended=True)
        head += more
    return head, kind


def _open_envelope(
    job: Job,
    ev: _Evidence,
    fmt: Fmt | None,
    head: bytes,
    meter: Meter,
    closers: list[Callable[[], None]],
) -> Opened:
    """Open the envelope with the opener registered for its format
    (decrypt/registry.py): the decrypted stream, and a callback that records the
    source, key and cipher layers once the stream has been read to its end."""

    def start_fetch() -> Prefetch:
        fetch = ev.fetch = _Fetch(job, meter, closers)
        size = ev.source.size if ev.source is not None else None
        ev.partial["source"] = lambda: fetch.partial(size)
        return fetch.reader

    def source_done() -> None:
        assert ev.fetch is not None
        ev.fetch.record(ev)

    opener = opener_for(fmt, job.secrets, job.data.name)
    request = OpenRequest(
        src=job.data,
        head=head,
        fmt=fmt,
        secrets=job.secrets,
        wrapped_key=job.wrapped_key,
        cancel=job.cancel,
        meter=meter,
        start_fetch=start_fetch,
        source_done=source_done,
        closers=closers,
    )
    return opener(request, ev)

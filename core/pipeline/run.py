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

from .. import __version__
from ..decompress.readers import open_decompressor
from ..decrypt.cms.key import open_cms_stream, probe_cms, unlock_cms
from ..decrypt.gpg import GpgDecryptReader, plan_decryption
from ..decrypt.openssl.enc import Base64Reader, DecryptReader, first_format
from ..decrypt.openssl.unlock import KeyEvidence, probe_openssl, read_wrapped_key, unlock_openssl
from ..errors import Cancelled, Layer, SealcheckError, SizeLimitExceeded, UnsupportedFormat
from ..formats import CMS, Fmt, sniff
from ..payload.inspector import PayloadInfo, PayloadInspector, require_judged
from ..plumbing.atomic import AtomicWriter
from ..plumbing.progress import Meter
from ..plumbing.streams import CHUNK, ChainReader, Prefetch, Reader, read_exact
from ..records.report import ErrorInfo, LayerResult, Report, Status
from ..storage.listing import NOT_A_BACKUP
from .job import Job
from .proof import (
    Evidence,
    cms_key_proof,
    decompress_evidence,
    decompress_partial,
    key_evidence,
    payload_evidence,
    source_partial,
    source_result,
)


class _HashingReader:
    def __init__(self, up: Reader, meter: Meter, stage: str) -> None:
        self._up = up
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self._meter = meter
        self._stage = stage

    def read(self, n: int = -1, /) -> bytes:
        b = self._up.read(n)
        if b:
            self.sha256.update(b)
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
        self.hashing = _HashingReader(self.raw, meter, "download")
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


class _Tally:
    """Counts the bytes a stage has passed on, and whether it reached its end (a
    stage raises at its end when its end-of-data checks fail, so an end reached is
    an end whose checks passed)."""

    def __init__(self, up: Reader) -> None:
        self._up = up
        self.bytes = 0
        self.eof = False

    def read(self, n: int = -1, /) -> bytes:
        b = self._up.read(n)
        self.bytes += len(b)
        if not b and n != 0:
            self.eof = True
        return b


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
    if job.operation == "restore":
        assert job.destination is not None
        writer = AtomicWriter(job.destination, overwrite=job.overwrite)
    closers: list[Callable[[], None]] = []
    try:
        decrypted, key_ev, cipher_done = _open_envelope(job, ev, fmt, head, meter, closers)
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
        stop_decomp = getattr(decomp, "close", None)
        if stop_decomp is not None:  # a decoder with its own worker to stop
            closers.append(stop_decomp)
        meter.stage("decompress")
        counted = _Counting(decomp, meter, "decompress")
        ev.partial["decompress"] = lambda: decompress_partial(decomp, counted.bytes, counted.eof)
        decode = Prefetch(counted, job.cancel, name="sealcheck-decode")
        closers.append(decode.close)
        payload = _consume(job, decode, writer, meter, ev)
        # Every byte went through: the envelope layers are proved even if the
        # payload check below fails.
        cipher_done()
        decompress_evidence(ev, decomp)
        try:
            payload.info = payload.inspector.finish()
        finally:
            ev.formats.append(payload.inspector.info.kind)
        if job.extra_sink is not None:
            job.extra_sink.finish()
        payload_evidence(ev, payload.info)
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
        _ = key_ev
        if writer is not None:
            writer.commit()
            ev.ok(
                "destination",
                f"written atomically to {job.destination} and synced to disk",
                bytes=writer.bytes,
            )
            writer = None
    except BaseException as exc:
        if writer is not None:
            writer.abort()
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


class _Counting(_Tally):
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


def _consume(
    job: Job, decode: Reader, writer: AtomicWriter | None, meter: Meter, ev: _Evidence
) -> _Consumed:
    inspector = PayloadInspector(obj=job.data.name)
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
    while True:
        job.cancel.check()
        chunk = decode.read(CHUNK)
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
        inspector.feed(chunk)
        seen = total
        if writer is not None:
            writer.write(chunk)
        if job.extra_sink is not None:
            job.extra_sink.feed(chunk)
    return _Consumed(inspector, h.hexdigest(), total)


def _open_envelope(
    job: Job,
    ev: _Evidence,
    fmt: Fmt | None,
    head: bytes,
    meter: Meter,
    closers: list[Callable[[], None]],
) -> tuple[Reader, KeyEvidence, Callable[[], None]]:
    """Return the decrypted stream, key evidence and a callback that records
    the cipher layer once the stream has been read to its end."""
    src = job.data

    def start_fetch() -> Prefetch:
        fetch = ev.fetch = _Fetch(job, meter, closers)
        size = ev.source.size if ev.source is not None else None
        ev.partial["source"] = lambda: fetch.partial(size)
        return fetch.reader

    def source_done() -> None:
        assert ev.fetch is not None
        ev.fetch.record(ev)

    secrets = job.secrets

    salted = fmt in (Fmt.OPENSSL_SALTED, Fmt.OPENSSL_SALTED_B64)
    # -K/-iv output has no header: its first bytes are ciphertext, which the sniffer
    # can take for something else (a binary OpenPGP packet tag is one byte). The
    # user's raw key says what it is.
    if salted or secrets.raw_key is not None:
        b64 = fmt is Fmt.OPENSSL_SALTED_B64
        ev.formats.append("openssl-enc" + ("-base64" if b64 else ""))
        header, probe = probe_openssl(src, head, base64=b64, salted=salted)
        wrapped = wrapped_name = None
        if job.wrapped_key is not None and secrets.raw_key is None:
            ev.wrapped = job.wrapped_key.identity()
            wrapped_name = job.wrapped_key.name
            wrapped = read_wrapped_key(job.wrapped_key)
        meter.set_current("unlock")
        params, key_ev = unlock_openssl(
            src, header, probe, secrets, wrapped, wrapped_name, job.cancel
        )
        key_evidence(ev, key_ev)
        meter.set_current("download")
        stream: Reader = start_fetch()
        if b64:
            stream = Base64Reader(stream, obj=src.name)
        read_exact(stream, header.body_offset)
        ciphertext = _Tally(stream)
        dec = DecryptReader(ciphertext, params, obj=src.name, cancel=job.cancel)
        params.wipe()
        desc = f"{params.cipher.name}, key and IV from {params.kdf.describe()}"
        if params.form is not None:
            desc += f", secret passed as {params.form.description}"

        def cipher_result() -> LayerResult:
            pad = (
                "PKCS#7 padding of the last block valid"
                if dec.padding_ok
                else "CTR mode: no padding"
            )
            return LayerResult(
                "cipher",
                Status.OK,
                f"{desc}; {pad}; {dec.ciphertext_bytes} bytes decrypted",
                {
                    "cipher": params.cipher.name,
                    "kdf": params.kdf.describe(),
                    "password_form": params.form.name if params.form else None,
                },
            )

        cbc = params.cipher.mode == "cbc"

        def cipher_partial() -> str | LayerResult:
            # The end was reached and checked (CBC: the padding is valid; CTR has none).
            if dec.padding_ok is True or (not cbc and ciphertext.eof):
                return cipher_result()
            return (
                f"{desc}; decrypted {dec.ciphertext_bytes} bytes without error; the end of "
                "the data, where the last block's padding is checked, was not reached"
            )

        ev.partial["cipher"] = cipher_partial

        def cipher_done() -> None:
            source_done()
            ev.layers["cipher"] = cipher_result()

        return dec, key_ev, cipher_done

    if fmt in (Fmt.PGP_BINARY, Fmt.PGP_ARMORED):
        ev.formats.append(fmt.value)
        plan = plan_decryption(head, secrets.gpg, secrets.passphrase, obj=src.name)
        home_cm = plan.home
        home = home_cm.__enter__()

        def close_home() -> None:
            home_cm.__exit__(None, None, None)

        closers.append(close_home)
        reader = GpgDecryptReader(
            start_fetch(),
            home=home,
            passphrase=plan.passphrase,
            cancel=job.cancel,
            obj=src.name,
            symmetric=plan.symmetric,
        )
        closers.insert(0, reader.close)
        key_ev = KeyEvidence("passphrase" if plan.symmetric else "gpg")
        # gpg reports the key it used, and the integrity check, only at the end.
        out = _Tally(reader)

        def gpg_results() -> dict[str, LayerResult]:
            res = reader.result
            if plan.symmetric:
                key = LayerResult(
                    "key",
                    Status.OK,
                    "gpg derived the session key from the passphrase (--passphrase-file; "
                    f"{res.s2k or 'S2K'}) and the data confirmed it",
                    {"key": "passphrase file", "symmetric": True, "s2k": res.s2k},
                )
            else:
                key = LayerResult(
                    "key",
                    Status.OK,
                    f"gpg unwrapped the session key with key {res.used_key or '?'}",
                    {"recipients": res.recipients},
                )
            integrity = (
                ", AEAD tags verified"
                if res.aead
                else ", modification detection code verified"
                if res.mdc
                else ""
            )
            cipher = LayerResult(
                "cipher",
                Status.OK,
                "OpenPGP decryption OK" + integrity,
                {
                    "gpg_status": [
                        s
                        for s in res.status
                        if s.split()[0] in ("DECRYPTION_INFO", "DECRYPTION_OKAY", "GOODMDC")
                    ]
                },
            )
            return {"key": key, "cipher": cipher}

        def gpg_partial(layer: str) -> str | LayerResult | None:
            if out.eof:  # gpg ended with success: its own verdict is in
                return gpg_results()[layer]
            if not out.bytes:
                return None
            if layer == "key" and plan.symmetric:
                return (
                    f"gpg decrypted {out.bytes} bytes with the session key from the passphrase; "
                    "the data confirms it at its end (MDC), which was not reached"
                )
            if layer == "key":
                return (
                    f"gpg decrypted {out.bytes} bytes, so it held a session key; which key "
                    "unwrapped it is reported at the end of the data, which was not reached"
                )
            return (
                f"gpg decrypted {out.bytes} bytes without error; the end of the data, where "
                "its integrity check (MDC) is made, was not reached"
            )

        ev.partial["key"] = lambda: gpg_partial("key")
        ev.partial["cipher"] = lambda: gpg_partial("cipher")

        def gpg_done() -> None:
            source_done()
            ev.layers.update(gpg_results())

        return out, key_ev, gpg_done

    if fmt in CMS:
        return _open_cms(job, ev, fmt, head, meter, start_fetch, source_done)
    if fmt in (Fmt.AGE, Fmt.XBCRYPT):
        raise UnsupportedFormat(
            f"{fmt.value} encryption is not supported yet", obj=src.name, layer=Layer.CIPHER
        )
    if fmt is None:
        raise UnsupportedFormat(
            f"{NOT_A_BACKUP}: it starts with no known magic, so it is not openssl enc with "
            "a salt, OpenPGP, CMS (S/MIME), or a compressed dump (for openssl enc -nosalt or "
            "-K/-iv give "
            "--raw-key-file/--iv)",
            obj=src.name,
            layer=Layer.SOURCE,
        )
    ev.warnings.append("the backup is not encrypted")
    ev.set("key", Status.SKIPPED, "not encrypted: no key involved")
    ev.set("cipher", Status.SKIPPED, "not encrypted")
    return start_fetch(), KeyEvidence("none"), source_done


def _open_cms(
    job: Job,
    ev: _Evidence,
    fmt: Fmt,
    head: bytes,
    meter: Meter,
    start_fetch: Callable[[], Reader],
    source_done: Callable[[], None],
) -> tuple[Reader, KeyEvidence, Callable[[], None]]:
    """CMS (S/MIME) envelopes: the content key is found from the object's first
    bytes before the download, then the content is streamed through its cipher."""
    src = job.data
    ev.formats.append(fmt.value)
    meter.set_current("unlock")
    probe = probe_cms(src, fmt, head)
    key = unlock_cms(probe, job.secrets.keys, job.cancel, src.name)
    hdr = probe.header
    ev.set(
        "key",
        Status.WARNING if key.ski_matches is False else Status.OK,
        cms_key_proof(key),
        key=key.key.label,
        fingerprint=key.key.fingerprint,
        padding=key.padding,
        recipient=key.recipient.rid,
        recipient_index=key.recipient.index,
        recipients=len(hdr.recipients) + len(hdr.other_recipients),
        recipient_id_checked=key.ski_matches,
    )
    if key.ski_matches is False:
        ev.warnings.append("the recipient's key identifier does not match the key that opened it")
    meter.set_current("download")
    try:
        dec, content = open_cms_stream(start_fetch(), fmt, probe, key, src.name, job.cancel)
    finally:
        key.wipe()
    spec = hdr.cipher.spec
    desc = f"CMS {hdr.kind}, {spec.name}"
    gcm = spec.mode == "gcm"

    def cipher_result() -> LayerResult:
        end = (
            "GCM tag verified: every content byte and the nonce are as encrypted"
            if gcm
            else "PKCS#7 padding of the last block valid; CBC has no MAC, so the content is "
            "judged by the layers below"
        )
        return LayerResult(
            "cipher",
            Status.OK,
            f"{desc}; {end}; {dec.ciphertext_bytes} bytes decrypted; the structure ends where "
            "its lengths say, with nothing after it",
            {
                "envelope": hdr.kind,
                "cipher": spec.name,
                "authenticated": gcm,
                "unprotected_attributes": content.unprotected_attrs,
            },
        )

    def cipher_partial() -> str | LayerResult | None:
        if dec.tag_ok or dec.padding_ok:
            return cipher_result()
        if not dec.ciphertext_bytes:
            return None
        check = "the GCM tag" if gcm else "the last block's padding"
        return (
            f"{desc}; decrypted {dec.ciphertext_bytes} bytes without error; the end of the "
            f"content, where {check} is checked, was not reached"
        )

    ev.partial["cipher"] = cipher_partial

    def cipher_done() -> None:
        source_done()
        ev.layers["cipher"] = cipher_result()

    key_ev = KeyEvidence("rsa", key.key.label, key.key.fingerprint, key.padding, key.tried)
    return dec, key_ev, cipher_done

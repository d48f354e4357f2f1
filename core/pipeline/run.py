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
from typing import Any

from .. import __version__
from ..decompress.base import DecompressReader
from ..decompress.readers import open_decompressor
from ..decrypt.cms.key import CmsKey, open_cms_stream, probe_cms, unlock_cms
from ..decrypt.gpg import GpgDecryptReader, plan_decryption
from ..decrypt.openssl.enc import Base64Reader, DecryptReader, first_format
from ..decrypt.openssl.unlock import KeyEvidence, probe_openssl, read_wrapped_key, unlock_openssl
from ..errors import Cancelled, Layer, SealcheckError, SizeLimitExceeded, UnsupportedFormat
from ..formats import CMS, Fmt, sniff
from ..payload.inspector import PayloadInfo, PayloadInspector, not_checked_note, require_judged
from ..plumbing.atomic import AtomicWriter
from ..plumbing.progress import Meter
from ..plumbing.streams import CHUNK, ChainReader, Prefetch, Reader, read_exact
from ..records.identity import SourceIdentity
from ..records.report import ErrorInfo, LayerResult, Report, Status
from ..records.verdict import Verdict
from ..storage.listing import NOT_A_BACKUP
from ..storage.s3 import S3Stream
from .job import Job

LAYER_ORDER = ("source", "key", "cipher", "decompress", "payload", "hashes", "destination")


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
        h, raw = self.hashing, self.raw
        details: dict[str, Any] = {"sha256": h.sha256.hexdigest(), "bytes": h.bytes}
        proved = f"read all {h.bytes} bytes"
        if isinstance(raw, S3Stream):
            details["resumes"] = raw.resumes
            details["retries"] = getattr(raw, "retries", 0)
            if raw.digest_checked:
                proved += "; their MD5 matches the object's ETag (end-to-end transfer check)"
            else:
                proved += "; multipart ETag, no end-to-end digest from the store"
            if raw.resumes:
                proved += f"; resumed {raw.resumes} time(s) after dropped connections"
        ev.set("source", Status.OK, proved, **details)

    def partial(self, size: int | None) -> str:
        """What the download did when the run stopped before its end."""
        of = f" of {size}" if size is not None else ""
        return (
            f"read {self.hashing.bytes}{of} bytes without error before the run stopped; the "
            "end-to-end transfer check (ETag, SHA-256 of the object) needs every byte and was "
            "not made"
        )


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


# What a started layer has done when the run stops before it recorded its result: a
# sentence ("incomplete"), its full result (it did reach its end), or None (nothing).
Partial = Callable[[], "str | LayerResult | None"]


# The steps in words, for "the run stopped because ... failed".
_STEP_WORDS = {
    "source": "the download",
    "key": "the key step",
    "cipher": "decryption",
    "decompress": "decompression",
    "payload": "the dump check",
    "destination": "writing the restored file",
    "database": "the restore test",
}


class _Evidence:
    def __init__(self) -> None:
        self.layers: dict[str, LayerResult] = {}
        self.formats: list[str] = []
        self.warnings: list[str] = []
        self.source: SourceIdentity | None = None
        self.fetch: _Fetch | None = None
        self.wrapped: SourceIdentity | None = None
        # A streamed layer, once it has started: what it has done so far (None: nothing
        # yet). Read only when the run ends before the layer recorded its own result.
        self.partial: dict[str, Partial] = {}

    def ok(self, layer: str, proved: str, **details: Any) -> None:
        self.layers[layer] = LayerResult(layer, Status.OK, proved, details)

    def set(self, layer: str, status: Status, proved: str, **details: Any) -> None:
        self.layers[layer] = LayerResult(layer, status, proved, details)

    def result_layers(
        self, error: SealcheckError | None, operation: str = "verify"
    ) -> tuple[LayerResult, ...]:
        """Every layer in order. After an error, a layer that never ran says "not
        reached"; a streamed layer that ran on part of the data says what it did
        ("incomplete"); what a layer proved before the failure is kept as it is."""
        if error is not None:
            failing = _error_layer(error)
            text = error.summary + (f" {error.detail}" if error.detail else "")
            # A setup problem (no key, storage not answering) is no finding on the backup.
            bad = Verdict.of(int(error.exit_code)) is Verdict.FAILED
            status = Status.FAILED if bad else Status.NOT_CHECKED
            if failing and failing not in self.layers:
                self.layers[failing] = LayerResult(failing, status, text)
            elif failing:
                old = self.layers[failing]
                self.layers[failing] = LayerResult(failing, status, text, old.details)
        out = []
        for name in LAYER_ORDER:
            if name in self.layers:
                out.append(self.layers[name])
            elif error is not None and (name != "destination" or operation == "restore"):
                out.append(self._unfinished(name, error))
        return tuple(out)

    def _unfinished(self, name: str, error: SealcheckError) -> LayerResult:
        failing = _error_layer(error)
        verb = "failed" if Verdict.of(int(error.exit_code)) is Verdict.FAILED else "could not run"
        why = (
            f"{_STEP_WORDS[failing]} {verb}"
            if failing in _STEP_WORDS
            else error.summary.rstrip(".").lower()
        )
        partial = self.partial.get(name)
        done = partial() if partial is not None else None
        if isinstance(done, LayerResult):
            return done
        if done is not None:
            return LayerResult(name, Status.INCOMPLETE, f"not completed: {done} ({why})")
        if name == "source" and self.fetch is None and self.source is not None:
            # The full download starts only once the key is proved (see _Fetch).
            return LayerResult(
                name,
                Status.NOT_REACHED,
                f"not reached ({why}): the object was identified ({self.source.size} bytes) "
                "and only its first bytes, and for openssl enc its last cipher blocks, were "
                "read to test the key; the full download starts once the key is proved",
            )
        if name == "destination":
            return LayerResult(
                name,
                Status.NOT_REACHED,
                f"not reached ({why}): no file was left at the destination",
            )
        return LayerResult(name, Status.NOT_REACHED, f"not reached ({why})")


def _error_layer(error: SealcheckError) -> str | None:
    if error.layer is None:
        return None
    return {
        Layer.SOURCE: "source",
        Layer.KEY: "key",
        Layer.CIPHER: "cipher",
        Layer.DECOMPRESS: "decompress",
        Layer.PAYLOAD: "payload",
        Layer.DESTINATION: "destination",
        Layer.DATABASE: "database",
    }[error.layer]


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
            decomp = open_decompressor(first, ChainReader(first, decrypted), obj=src.name)
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
        ev.partial["decompress"] = lambda: _decompress_partial(decomp, counted)
        decode = Prefetch(counted, job.cancel, name="sealcheck-decode")
        closers.append(decode.close)
        payload = _consume(job, decode, writer, meter, ev)
        # Every byte went through: the envelope layers are proved even if the
        # payload check below fails.
        cipher_done()
        _decompress_evidence(ev, decomp)
        try:
            payload.info = payload.inspector.finish()
        finally:
            ev.formats.append(payload.inspector.info.kind)
        if job.extra_sink is not None:
            job.extra_sink.finish()
        _payload_evidence(ev, payload.info)
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
        _key_evidence(ev, key_ev)
        meter.set_current("download")
        stream: Reader = start_fetch()
        if b64:
            stream = Base64Reader(stream, obj=src.name)
        read_exact(stream, header.body_offset)
        ciphertext = _Tally(stream)
        dec = DecryptReader(ciphertext, params, obj=src.name)
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
        _cms_key_proof(key),
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
        dec, content = open_cms_stream(start_fetch(), fmt, probe, key, src.name)
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


def _cms_key_proof(key: CmsKey) -> str:
    rec = key.recipient
    text = (
        f"content key unwrapped from recipient #{rec.index} ({rec.rid}) with {key.key.label} "
        f"({key.padding}), confirmed by {key.confirmed_by}"
    )
    if key.ski_matches is True:
        return text + "; the recipient's key identifier is this key's"
    if key.ski_matches is False:
        return text + (
            "; the recipient's key identifier is NOT this key's (damaged, or the certificate "
            "used another key-identifier method)"
        )
    return text + "; the recipient identifier itself is not checked (no certificate is given)"


def _key_evidence(ev: _Evidence, k: KeyEvidence) -> None:
    if k.method == "rsa":
        ev.ok(
            "key",
            f"data key unwrapped with {k.key_label} ({k.padding}) and confirmed by the data",
            key=k.key_label,
            fingerprint=k.fingerprint,
            padding=k.padding,
        )
    elif k.method == "passphrase":
        ev.ok("key", "passphrase accepted and confirmed by the data", key="passphrase file")
    elif k.method == "raw":
        ev.ok("key", "raw key and IV confirmed by the data", key="raw -K/-iv")


def _decompress_evidence(ev: _Evidence, d: DecompressReader) -> None:
    layer, warnings = _decompress_result(d)
    ev.layers["decompress"] = layer
    ev.warnings.extend(warnings)


def _decompress_partial(d: DecompressReader, counted: _Tally) -> str | LayerResult | None:
    if counted.eof:  # the decompressor reached its end and its checks passed
        return _decompress_result(d)[0]
    if not counted.bytes:
        return None
    return (
        f"{d.stats.fmt} decoded {counted.bytes} bytes without error; the end of the stream, "
        "where its checks (CRC, length) are made, was not reached"
    )


def _decompress_result(d: DecompressReader) -> tuple[LayerResult, list[str]]:
    st = d.stats
    checks = {
        "gzip": "CRC-32 and ISIZE of every member verified, end of stream reached",
        "bzip2": "block and stream CRCs verified, end of stream reached",
        "xz": "integrity checks verified, end of stream reached",
        "zstd": "frames complete, content checksums verified where present",
    }
    if st.fmt == "none":
        return LayerResult("decompress", Status.SKIPPED, "not compressed"), []
    members = (
        f"{st.members} member{'s' if st.members != 1 else ''}" if st.fmt != "zstd" else "all frames"
    )
    proved = f"{st.fmt}: {members}; {checks.get(st.fmt, 'decoded')}"
    status = Status.WARNING if st.notes else Status.OK
    warnings = list(st.notes)
    details = {
        "format": st.fmt,
        "members": st.members,
        "compressed_bytes": st.input_bytes,
        "notes": list(st.notes),
    }
    if st.fmt != "zstd" and st.members > 1:
        warnings.append(f"{st.fmt} stream has {st.members} concatenated members")
    return LayerResult("decompress", status, proved, details), warnings


def _payload_evidence(ev: _Evidence, info: PayloadInfo) -> None:
    who = info.producer or "unknown producer"
    if info.producer_version:
        who += f" {info.producer_version}"
    proved = f"{who}: {info.completeness.value}"
    if info.trailer:
        proved += f" ({info.trailer})"
    status = Status.OK
    if not info.completeness.judged:
        status = Status.WARNING
        ev.warnings.append(not_checked_note(info))
    details: dict[str, Any] = {
        "checked": info.completeness.judged,
        "kind": info.kind,
        "database_kind": info.database_kind,
        "producer": info.producer,
        "producer_version": info.producer_version,
        "server_version": info.server_version,
        "database": info.database,
        "completeness": info.completeness.value,
        "tables": info.tables,
    }
    if info.kind == "xbstream" or info.kind.startswith("pg_dump-"):
        details["entries"] = info.entries
        details["entries_total"] = info.entries_total
    details.update(info.facts)
    ev.set("payload", status, proved, **details)

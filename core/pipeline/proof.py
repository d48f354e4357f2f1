"""What each layer proved, in words: the per-layer results a report is made of.

Why apart from run.py: run.py composes the stages and owns their threads; this
module only turns what a stage did (counts, flags, the decompressor's statistics,
the payload's findings) into LayerResults, including the "not reached" and
"incomplete" sentences for a run that stopped early. It starts no stage.
"""

from __future__ import annotations

from typing import Any

from ..decompress.base import DecompressReader
from ..decrypt.opener import Partial
from ..errors import Layer, SealcheckError
from ..payload.info import PayloadInfo, not_checked_note
from ..physical.layout import PAYLOAD_KINDS
from ..records.identity import SourceIdentity
from ..records.report import LayerResult, Status
from ..records.verdict import Verdict
from ..storage.source import CheckedTransfer

LAYER_ORDER = ("source", "key", "cipher", "decompress", "payload", "hashes", "destination")
# A physical backup's own layers come after its stream (payload), before the hashes;
# listed only for a physical backup (issue 16).
PHYSICAL_LAYERS = ("member-cipher", "member-decompress", "backup", "pages")

# The steps in words, for "the run stopped because ... failed".
STEP_WORDS = {
    "source": "the download",
    "key": "the key step",
    "cipher": "decryption",
    "decompress": "decompression",
    "payload": "the dump check",
    "member-cipher": "decrypting the backup's files",
    "member-decompress": "decompressing the backup's files",
    "backup": "the backup's completeness check",
    "pages": "the InnoDB page check",
    "destination": "writing the restored file",
    "database": "the restore test",
}


class Evidence:
    def __init__(self) -> None:
        self.layers: dict[str, LayerResult] = {}
        self.formats: list[str] = []
        self.warnings: list[str] = []
        self.source: SourceIdentity | None = None
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
            failing = error_layer(error)
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
        order: tuple[str, ...] = LAYER_ORDER
        if any(n in self.layers or n in self.partial for n in PHYSICAL_LAYERS):
            i = LAYER_ORDER.index("hashes")
            order = LAYER_ORDER[:i] + PHYSICAL_LAYERS + LAYER_ORDER[i:]
        for name in order:
            if name in self.layers:
                out.append(self.layers[name])
            elif error is not None and (name != "destination" or operation == "restore"):
                out.append(self._unfinished(name, error))
        return tuple(out)

    def _unfinished(self, name: str, error: SealcheckError) -> LayerResult:
        failing = error_layer(error)
        verb = "failed" if Verdict.of(int(error.exit_code)) is Verdict.FAILED else "could not run"
        why = (
            f"{STEP_WORDS[failing]} {verb}"
            if failing in STEP_WORDS
            else error.summary.rstrip(".").lower()
        )
        partial = self.partial.get(name)
        done = partial() if partial is not None else None
        if isinstance(done, LayerResult):
            return done
        if done is not None:
            return LayerResult(name, Status.INCOMPLETE, f"not completed: {done} ({why})")
        if name == "source" and self.source is not None:
            # The full download starts only once the key is proved (see run._Fetch); once
            # started, its partial proof above says what it read.
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


def error_layer(error: SealcheckError) -> str | None:
    if error.layer is None:
        return None
    return {
        Layer.SOURCE: "source",
        Layer.KEY: "key",
        Layer.CIPHER: "cipher",
        Layer.DECOMPRESS: "decompress",
        Layer.PAYLOAD: "payload",
        Layer.MEMBER_CIPHER: "member-cipher",
        Layer.MEMBER_DECOMPRESS: "member-decompress",
        Layer.BACKUP: "backup",
        Layer.PAGES: "pages",
        Layer.DESTINATION: "destination",
        Layer.DATABASE: "database",
    }[error.layer]


def decompress_evidence(ev: Evidence, d: DecompressReader) -> None:
    layer, warnings = decompress_result(d)
    ev.layers["decompress"] = layer
    ev.warnings.extend(warnings)


def decompress_partial(d: DecompressReader, decoded: int, eof: bool) -> str | LayerResult | None:
    """The decompress layer when the run stopped: ``decoded`` bytes passed on, ``eof``
    whether the decompressor reached its end (where it raises if its checks fail)."""
    if eof:  # the decompressor reached its end and its checks passed
        return decompress_result(d)[0]
    if not decoded:
        return None
    return (
        f"{d.stats.fmt} decoded {decoded} bytes without error; the end of the stream, "
        "where its checks (CRC, length) are made, was not reached"
    )


def decompress_result(d: DecompressReader) -> tuple[LayerResult, list[str]]:
    st = d.stats
    checks = {
        "gzip": "CRC-32 and ISIZE of every member verified, end of stream reached",
        "bzip2": "block and stream CRCs verified, end of stream reached",
        "xz": "integrity checks verified, end of stream reached",
        "zstd": "frames complete, content checksums verified where present",
        "qpress": "the Adler-32 of every QuickLZ block verified, each decoded to its stated "
        "size, the archive's end marker read",
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


def payload_evidence(ev: Evidence, info: PayloadInfo) -> None:
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
    if info.kind in PAYLOAD_KINDS.values() or info.kind.startswith("pg_dump-"):
        details["entries"] = info.entries
        details["entries_total"] = info.entries_total
    details.update(info.facts)
    ev.set("payload", status, proved, **details)


def source_result(sha256: str, nbytes: int, raw: object) -> LayerResult:
    """The source layer of a download read to its end; ``raw`` is the opened stream
    (an S3 stream adds its transfer check and its resumes)."""
    details: dict[str, Any] = {"sha256": sha256, "bytes": nbytes}
    proved = f"read all {nbytes} bytes"
    if isinstance(raw, CheckedTransfer):
        details["resumes"] = raw.resumes
        details["retries"] = getattr(raw, "retries", 0)
        if raw.digest_checked:
            proved += "; their MD5 matches the object's ETag (end-to-end transfer check)"
        else:
            proved += "; multipart ETag, no end-to-end digest from the store"
        if raw.resumes:
            proved += f"; resumed {raw.resumes} time(s) after dropped connections"
    return LayerResult("source", Status.OK, proved, details)


def source_partial(nbytes: int, size: int | None) -> str:
    """What the download did when the run stopped before its end."""
    of = f" of {size}" if size is not None else ""
    return (
        f"read {nbytes}{of} bytes without error before the run stopped; the "
        "end-to-end transfer check (ETag, SHA-256 of the object) needs every byte and was "
        "not made"
    )

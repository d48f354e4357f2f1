"""The signed report streams its records (a campaign of 100,000 peaked at 4.2 GB when
they were held): the writer walks the records a history batch at a time and never holds
them all, and what it writes is byte for byte what serialising the whole body gives
(so ``report verify`` and the seal checks of reports already filed keep holding)."""

from __future__ import annotations

import hashlib
import io
import json
import tracemalloc
import weakref
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealcheck.core.records import (
    chain,
    evidence,
    evidence_check,
    evidence_verify,
    indented,
    report_formats,
)
from sealcheck.core.records.evidence_stream import BATCH, Records, spliced
from sealcheck.core.records.history import Entry, History, Trigger
from sealcheck.core.records.identity import SourceIdentity
from sealcheck.core.records.report import ErrorInfo, LayerResult, Report, Status

FORMATS = ("json", "html", "csv")


def _report(n: int) -> Report:
    failed = n % 7 == 3
    return Report(
        operation="verify",
        source=SourceIdentity(
            uri=f"s3://bkt/db/sét{n % 13}/nightly€.sql.gz", size=1000 + n, version_id=f"v{n}"
        ),
        wrapped_key=None,
        ok=not failed,
        layers=(LayerResult("hashes", Status.OK, "read <all> & hashed", {"n": n, "x": 1.5}),),
        formats=("gzip",),
        error=ErrorInfo("Truncated", "compression", "cut \u2028 short\n", 1) if failed else None,
        started_at="2026-12-01T00:00:00+00:00",
        duration_s=0.25,
        sealcheck_version="test",
    )


def _history(tmp: Path, n: int) -> tuple[History, list[int]]:
    h = History(tmp / "history.sqlite3", keep_open=True)
    added = h.record_many(
        ((r, r.to_dict(), None) for r in map(_report, range(n))),
        trigger=Trigger("audit"),
        campaign="audit-stream",
        keep=Entry.tally,
    )
    return h, [e.id for e in added]


def _listed(h: History, ids: list[int]) -> dict[str, Any]:
    """The same body held whole, as it was built before streaming."""
    by_id = {e.id: e for e in h.entries(campaigns=True)}
    return evidence.build([by_id[i] for i in ids], now=_NOW, sections=_SECTIONS)


_NOW = evidence._dt.datetime(2026, 12, 7, 12, 0, tzinfo=evidence._dt.UTC)
_SECTIONS = {"campaign": {"id": "audit-stream", "zähler": [1, 2.5, None, {"b": 1, "a": 2}]}}


class _Signer:
    """An Ed25519 key of this test's own (custody is keys/signing.py's, tested there)."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_pem = pem.decode()
        self.fingerprint = chain.spki_fingerprint_of_pem(pem)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


@pytest.mark.parametrize("indent", [None, 1, 2])
@pytest.mark.parametrize("items", [[], [{}], [{"a": [], "b": {}}, {"ü": "\u2028\n<&>", "n": 1.5}]])
def test_spliced_is_json_dumps_of_the_whole(indent: int | None, items: list[Any]) -> None:
    doc = {"z": 1, "outer": {"before": [1, []], "entries": items, "after": {"k": "v"}}, "a": None}
    for ensure_ascii in (True, False):
        kw = {"indent": indent, "ensure_ascii": ensure_ascii}
        if indent is None:
            kw |= {"sort_keys": True, "separators": (",", ":")}

        def dumps(v: Any, kw: dict[str, Any] = kw) -> str:
            return json.dumps(v, **kw)

        pieces = spliced(doc, ["outer", "entries"], dumps, iter(items), indent=indent)
        assert "".join(pieces) == dumps(doc)


def test_streamed_reports_are_the_bytes_of_the_whole_body(tmp_path: Path) -> None:
    h, ids = _history(tmp_path, 40)
    order = sorted(ids, key=lambda i: (i % 3, -i))  # any order: the report keeps it
    signer = _Signer()  # Ed25519 signs deterministically: both get one signature
    streamed = evidence.sign(
        evidence.build_streamed(h, order, now=_NOW, sections=_SECTIONS), h, signer
    )
    held = evidence.sign(_listed(h, order), h, signer)
    assert streamed["chain"] == held["chain"]
    for fmt in FORMATS:
        out = io.BytesIO()
        report_formats.write(streamed, fmt, out)
        assert out.getvalue() == report_formats.render(held, fmt), fmt
    # The JSON as it was written before streaming (json.dumps of the whole document).
    doc = {
        "format": evidence.FORMAT,
        "format_version": evidence.FORMAT_VERSION,
        "evidence": held,
        "sha256_method": evidence.JSON_METHOD,
        "sha256": hashlib.sha256(evidence.canonical(held)).hexdigest(),
    }
    want = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
    assert evidence.to_json(streamed) == want
    body_sha = hashlib.sha256(evidence.canonical(evidence.unsigned_part(held))).hexdigest()
    assert streamed["chain"]["statement"]["body_sha256"] == body_sha
    for fmt in ("json", "html"):
        data = report_formats.render(streamed, fmt)
        assert evidence_check.check(data).ok
        pem = signer.public_pem.encode()
        assert evidence_verify.verify(data, pem, report_formats.RENDERERS).ok, fmt


_VALUES = [
    [],
    {},
    [[]],
    {"a": {}, "b": [{}, []]},
    ("t", ("u", [])),
    "s\n\u2028\ud800é€<&>",
    1,
    None,
    {"n": [1, 2.5, -0.0, 1e-300, 10**30, True, False, None, float("nan"), float("inf")]},
    {"é": {"k": [{"z": []}, {"-inf": -float("inf")}]}},
    {1: 2, "a": "b"},  # a key that is not a string: json.dumps writes it
    {"a": {2.5: None}},
]


@pytest.mark.parametrize("value", _VALUES)
def test_indented_is_json_dumps(value: Any) -> None:
    for indent in (1, 2, 4):
        for ensure_ascii in (True, False):
            want = json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)
            assert indented.dumps(value, indent, ensure_ascii=ensure_ascii) == want


class _Alive:
    """Records made for the writer, counted while any is still referenced."""

    def __init__(self, most: int) -> None:
        self.alive = 0
        self.peak = 0
        self.most = most

    def render(self, e: Entry) -> dict[str, Any]:
        class Tracked(dict[str, Any]):  # a dict json.dumps writes as one; weakly referable
            pass

        r = Tracked(evidence.record_of(e))
        self.alive += 1
        self.peak = max(self.peak, self.alive)
        assert self.alive <= self.most, f"{self.alive} records held at once"
        weakref.finalize(r, self._gone)
        return r

    def _gone(self) -> None:
        self.alive -= 1


def test_the_writer_holds_a_few_records_not_the_campaign(tmp_path: Path) -> None:
    """A writer that gathered the records (a list, a join of their texts) fails here."""
    h, ids = _history(tmp_path, 3 * BATCH)
    alive = _Alive(most=3)
    body = evidence.build(
        (), now=_NOW, sections=_SECTIONS
    )  # its header; the records come from the history
    body["entries"] = Records(ids, h.entries_by_id, alive.render)
    signed = evidence.sign(body, h, None)
    for fmt in FORMATS:
        report_formats.write(signed, fmt, io.BytesIO())
    assert 1 <= alive.peak <= 3


def test_a_campaigns_report_is_written_in_bounded_memory(tmp_path: Path) -> None:
    """The whole road (the batches read from SQLite, signing, rendering, writing) for
    4,000 small records: its peak allocation is a small part of the report's size (held
    whole, the records and their text are several times that size)."""
    h, ids = _history(tmp_path, 4 * 1000)
    out = tmp_path / "report.json"
    tracemalloc.start()
    try:
        body = evidence.build_streamed(h, ids, now=_NOW, sections=_SECTIONS)
        signed = evidence.sign(body, h, None)
        with out.open("wb") as f:
            report_formats.write(signed, "json", f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = out.stat().st_size
    assert size > 12_000_000
    # Held anyway: the ids, the signed spine (id and digest of each record, and its
    # text in the report's head and tail) and one batch of entries.
    assert peak < size / 2, f"peak {peak} bytes for a report of {size}"
    assert evidence_check.check(out.read_bytes()).ok

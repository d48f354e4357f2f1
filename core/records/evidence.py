r"""Evidence reports for auditors: history entries rendered as a JSON or HTML file.

The evidence body is one plain dict (built once, from the history's entries); both
formats are renderings of it and both end with a SHA-256, so an edit made after the
export is visible:

* JSON: ``sha256`` is the digest of the ``evidence`` member serialised canonically
  (sorted keys, no whitespace, ASCII), which any JSON library can reproduce.
* HTML: the seal is the file's last line, exactly 65 bytes: the SHA-256 (64 hex digits)
  of every byte before it, and a newline. Nothing may follow it, so the digest covers
  every byte a browser renders: content added before ``<html>``, inside it or after
  ``</html>`` breaks the seal. The check needs only standard tools (bash, coreutils)::

      f=report.html; head -c $(($(wc -c <"$f") - 65)) "$f" | sha256sum | cut -c1-64 \
          | cmp -s - <(tail -c 65 "$f") && echo "seal intact" || echo "SEAL BROKEN"

  (``SHELL_CHECK`` is that line; ``tail -c 65 report.html`` prints the digest to compare
  with the copy filed elsewhere.) The sealed part also states its own length in a
  comment (``SEAL_MARK``), which tells a truncated file from one with content appended.

``sealcheck report check FILE`` (``evidence_check``) does both checks offline.

A digest is tamper-evident, not a signature: whoever edits the file can recompute
it. File the digest separately (a ticket, a signed mail) when that matters.

The HTML is a single file: inline CSS, no scripts (a Content-Security-Policy forbids
them), every value passed through ``html.escape``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import socket
from collections.abc import Callable, Iterator, Sequence
from html import escape
from typing import Any

from ..version import __version__
from . import chain, indented, sections
from .evidence_stream import Frame, Records, entries_of, ids_of, spliced
from .history import Entry, History, Kind, Subject
from .report import Report, Status
from .restore_result import RestoreTestResult
from .targets import measured
from .verdict import NOT_CHECKED_MEANING, Verdict

FORMAT = "sealcheck-evidence"
FORMAT_VERSION = 1
HTML_START = "<!DOCTYPE html>\n<html lang='en'>"
# In the sealed part, so it is covered too: how many bytes the digest covers.
SEAL_MARK = "<!-- sealcheck-evidence-seal bytes={sealed} -->"
SEAL_OPEN = "<p class='seal'>"  # the last sealed bytes; the digest line follows
SEAL_LINE_BYTES = 65  # 64 hex digits and a newline, the very end of the file
SHELL_CHECK = (
    'f=report.html; head -c $(($(wc -c <"$f") - 65)) "$f" | sha256sum | cut -c1-64 '
    '| cmp -s - <(tail -c 65 "$f") && echo "seal intact" || echo "SEAL BROKEN"'
)
JSON_METHOD = (
    "SHA-256 of the 'evidence' member as JSON with sorted keys, separators ',' and ':', "
    "ASCII only (Python: json.dumps(evidence, sort_keys=True, separators=(',', ':')))"
)


def build(
    entries: Sequence[Entry],
    *,
    now: _dt.datetime | None = None,
    sections: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The evidence body: one record per entry, in the order given. ``sections``: more
    members (an audit's ``campaign`` and ``coverage``), covered by the signature too."""
    stamp = (now or _dt.datetime.now(_dt.UTC)).astimezone(_dt.UTC)
    return {
        "generated_at": stamp.isoformat(timespec="seconds"),
        "generated_by": {"tool": "sealcheck", "version": __version__, "host": socket.gethostname()},
        **(sections or {}),
        "entries": [record_of(e) for e in entries],
    }


def build_streamed(
    history: History,
    ids: Sequence[int],
    *,
    now: _dt.datetime | None = None,
    sections: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The evidence body of history entries ``ids`` (in that order), as ``build`` makes
    it, but its records are read back from the history a batch at a time whenever the
    body is walked (``evidence_stream.Records``): a campaign's report holds one batch."""
    body = build((), now=now, sections=sections)
    body["entries"] = Records(ids, history.entries_by_id, record_of)
    return body


def sign(body: dict[str, Any], history: History, signer: chain.Signer | None) -> dict[str, Any]:
    """The body with its ``chain`` member: the spine from its first record to the
    history's head, and that statement signed (unsigned when ``signer`` is None)."""
    return {**body, "chain": chain.sign(statement(body, history), signer)}


def statement(body: dict[str, Any], history: History) -> dict[str, Any]:
    """What ``sign`` signs: the spine from the body's first record to the history's
    head and the digest of the body, which walks its records (a damaged one fails here)."""
    ids = ids_of(body)
    anchor, spine = history.spine(min(ids)) if ids else (chain.GENESIS, [])
    h = hashlib.sha256()
    for piece in canonical_pieces(body):
        h.update(piece.encode())
    return chain.statement(
        anchor=anchor,
        spine=spine,
        included=ids,
        body_sha256=h.hexdigest(),
        signed_at=body["generated_at"],
    )


def unsigned_part(body: dict[str, Any]) -> dict[str, Any]:
    """The body as it was before ``sign`` (what ``body_sha256`` covers)."""
    return {k: v for k, v in body.items() if k != "chain"}


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _canonical_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_pieces(body: dict[str, Any]) -> Iterator[str]:
    """``canonical(body)`` in pieces, its records one at a time."""
    return spliced(body, ["entries"], _canonical_text, entries_of(body), indent=None)


def _doc(body: dict[str, Any], seal: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "evidence": body,
        "sha256_method": JSON_METHOD,
        "sha256": seal,  # last, as the seal
    }


def _indented(value: Any) -> str:
    return indented.dumps(value, 2, ensure_ascii=False)  # json.dumps's text, faster


def to_json(body: dict[str, Any]) -> bytes:
    return b"".join(json_pieces(body))


_NO_SEAL = "0" * 64  # the seal's place while the records are written


def json_pieces(body: dict[str, Any]) -> Iterator[bytes]:
    """The JSON report in pieces, walking the records once: each is written and added
    to the seal's digest (of ``canonical(body)``) as it comes; the seal ends the file."""
    seal = hashlib.sha256()
    canon = Frame(body, ["entries"], _canonical_text, indent=None)
    out = Frame(_doc(body, _NO_SEAL), ["evidence", "entries"], _indented, indent=2)
    seal.update(canon.head.encode())
    yield out.head.encode()
    first = True
    for r in entries_of(body):
        seal.update(canon.item(r, first).encode())
        yield out.item(r, first).encode()
        first = False
    seal.update((canon.end(first) + canon.tail).encode())
    yield out.end(first).encode()
    # The tail ends with the seal, the last member: the digest, now known, in its place.
    end = out.tail.rindex(_NO_SEAL)
    yield (out.tail[:end] + seal.hexdigest() + out.tail[end + len(_NO_SEAL) :] + "\n").encode()


# --- one record ----------------------------------------------------------------------


def record_of(e: Entry) -> dict[str, Any]:
    """One entry's record: its stored content under ``chain`` (what its digest covers)
    and the fields an auditor reads, all derived from that content."""
    out = _record(e) if e.kind.of_a_version else _campaign_record(e)
    content = e.content_but_result()  # the result is carried once, as the record's "result"
    out["chain"] = {
        "content": content,
        "prev_hash": e.prev_hash,
        "digest": e.digest,
        "record_hash": e.record_hash,
    }
    return out


def entry_of(record: dict[str, Any]) -> Entry:
    """The history entry a report's record was made from (its ``chain`` member and its
    result), for checking it offline; ValueError/KeyError/TypeError when damaged."""
    c, ch = record["chain"]["content"], record["chain"]
    return Entry(
        id=int(c["id"]),
        when=str(c["recorded_at"]),
        kind=Kind(c["kind"]),
        subject=Subject(
            c["uri"],
            c["bucket"],
            c["object_key"],
            c["version_id"],
            c["etag"],
            c["size"],
            c["sha256"],
        ),
        ok=bool(c["ok"]),
        exit_code=int(c["exit_code"]),
        failed_layer=c["failed_layer"],
        result_json=json.dumps(record["result"], separators=(",", ":"), ensure_ascii=False),
        sealcheck_version=str(c["sealcheck_version"]),
        host=str(c["host"]),
        os_user=c["os_user"],
        trigger=c["run_trigger"],
        campaign=c["campaign"],
        prev_hash=ch["prev_hash"],
        digest=ch["digest"],
        record_hash=ch["record_hash"],
    )


def _verdict_fields(e: Entry) -> dict[str, Any]:
    return {
        "history_id": e.id,
        "recorded_at": e.when,
        "kind": e.kind.value,
        # A run that could not check the backup is labelled as such, never "FAILED".
        "verdict": e.verdict.label,
        "verdict_code": e.verdict.value,
        "ok": e.ok,
        "exit_code": e.exit_code,
    }


def _who(e: Entry) -> dict[str, Any]:
    return {
        "host": e.host,
        "os_user": e.os_user,
        "trigger": e.trigger,
        "campaign": e.campaign,
        "sealcheck_version": e.sealcheck_version,
    }


def _campaign_record(e: Entry) -> dict[str, Any]:
    return {
        **_verdict_fields(e),
        **_who(e),
        "where": e.subject.uri,
        "result": json.loads(e.result_json),
    }


def _record(e: Entry) -> dict[str, Any]:
    result = e.result()
    stored = json.loads(e.result_json)  # parsed once: read only, by "targets" and "result"
    rt = result if isinstance(result, RestoreTestResult) else None
    report = rt.verification if rt is not None else result
    assert report is None or isinstance(report, Report)
    layers = [
        {"layer": x.layer, "status": x.status.value, "proved": x.proved, "details": x.details}
        for x in (report.layers if report is not None else ())
    ]
    if rt is not None:
        layers.append(_database_layer(rt))
    error = rt.error if rt is not None else (report.error if report is not None else None)
    return {
        **_verdict_fields(e),
        "failed_layer": e.failed_layer,
        **_who(e),
        "object": _object(e, report),
        "opened_with": _opened_with(report),
        "age_at_check_s": _age(e, report),
        # The RTO/RPO its source set when it was recorded, and whether they were met.
        "targets": measured(
            stored.get("targets"),
            rt.total_seconds if rt is not None else None,
            _age(e, report),
        ),
        "wrapped_key": _ident(report.wrapped_key) if report and report.wrapped_key else None,
        "formats": list(report.formats) if report is not None else [],
        "timings": _timings(report, rt),
        "layers": layers,
        "error": None
        if error is None
        else {"kind": error.kind, "layer": error.layer, "message": error.message},
        "warnings": list(rt.warnings if rt is not None else report.warnings if report else ()),
        "destination": report.destination if report is not None else None,
        "restore_test": _restore_test(rt) if rt is not None else None,
        "result": stored,  # the full record, as it was stored
    }


def _opened_with(report: Report | None) -> dict[str, Any] | None:
    """The key that opened the backup: its SPKI fingerprint and where it was held
    (never the key)."""
    key = report.layer("key") if report is not None else None
    if key is None or key.status not in (Status.OK, Status.WARNING):
        return None
    return {"fingerprint": key.details.get("fingerprint"), "held": key.details.get("key")}


def _age(e: Entry, report: Report | None) -> float | None:
    """How old the backup was when it was checked (against an RPO), in seconds."""
    made = report.source.last_modified if report is not None and report.source else None
    if not made:
        return None
    try:
        return round((e.when_dt - _dt.datetime.fromisoformat(made)).total_seconds(), 1)
    except (ValueError, TypeError):
        return None


def _ident(s: Any) -> dict[str, Any]:
    return {
        "uri": s.uri,
        "version_id": s.version_id,
        "etag": s.etag,
        "size": s.size,
        "last_modified": s.last_modified,
    }


def _object(e: Entry, report: Report | None) -> dict[str, Any]:
    subj = e.subject
    hashes = report.layer("hashes") if report is not None else None
    hd = hashes.details if hashes is not None and hashes.status is Status.OK else {}
    return {
        "uri": subj.uri,
        "bucket": subj.bucket,
        "key": subj.key,
        "version_id": subj.version_id,
        "etag": subj.etag,
        "size": subj.size,
        "last_modified": report.source.last_modified if report and report.source else None,
        "object_sha256": subj.sha256,
        "plaintext_sha256": hd.get("plaintext_sha256"),
        "plaintext_bytes": hd.get("plaintext_bytes"),
    }


def _timings(report: Report | None, rt: RestoreTestResult | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if report is not None:
        out.update(started_at=report.started_at, duration_s=report.duration_s)
    if rt is not None:
        out.update(
            started_at=rt.started_at,
            load_s=rt.load_seconds,
            checks_s=rt.checks_seconds,
            total_s=rt.total_seconds,  # the recovery time objective as measured
        )
    return out


def _database_layer(rt: RestoreTestResult) -> dict[str, Any]:
    if rt.ok:
        rows = sum(t.rows or 0 for t in rt.tables)
        proved = (
            f"loaded into {rt.server or rt.engine} ({rt.mode}): {len(rt.tables)} tables, "
            f"{rows} rows, each as the dump inserted; checks passed"
        )
        if rt.hostile:  # never a plain pass: what the dump tried is part of the proof
            proved += (
                f"; but the dump tried {len(rt.hostile)} thing(s) a backup should not do "
                "(refused, or confined to its own database: see 'hostile')"
            )
    else:
        proved = rt.error.message if rt.error else "the restore test failed"
    verdict = Verdict.of(rt.exit_code)
    status = {Verdict.OK: Status.OK, Verdict.FAILED: Status.FAILED}.get(verdict, Status.NOT_CHECKED)
    return {"layer": "database", "status": status.value, "proved": proved, "details": {}}


def _restore_test(rt: RestoreTestResult) -> dict[str, Any]:
    return {
        "engine": rt.engine,
        "server": rt.server,
        "mode": rt.mode,
        "databases": list(rt.databases),
        "tables": [
            {
                "schema": t.schema,
                "name": t.name,
                "rows": t.rows,
                "expected_rows": t.expected_rows,
                "checksum": t.checksum,
                "ok": t.ok,
                "note": t.note,
            }
            for t in rt.tables
        ],
        "views": len(rt.views),
        "triggers": len(rt.triggers),
        "routines": len(rt.routines),
        "events": len(rt.events),
        "missing": list(rt.missing),
        "hostile": [dict(h) for h in rt.hostile],
        # Whether the throwaway server/scratch database was cleaned up afterwards.
        "cleanup": rt.cleanup_status or "not recorded",
        "cleanup_steps": list(rt.cleanup),
    }


# --- HTML ----------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;color:#1b1f24;max-width:60em;margin:2em auto;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccd}
table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #ccd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f1f3f6;width:12em}code,pre{font:12px ui-monospace,monospace;word-break:break-all}
pre{white-space:pre-wrap;background:#f6f8fa;padding:.5em}
.ok{color:#176f2c;font-weight:bold}.failed{color:#b00020;font-weight:bold}
.notchecked{color:#3d4a5c;font-weight:bold}
.warning{color:#8a5a00}.small{color:#555;font-size:12px}
footer{margin-top:3em;border-top:2px solid #1b1f24;padding-top:.5em}
.seal{font:13px ui-monospace,monospace;word-break:break-all}
@media print{details{display:none}}
"""


def to_html(body: dict[str, Any]) -> bytes:
    return b"".join(html_pieces(body))


def html_pieces(body: dict[str, Any]) -> Iterator[bytes]:
    """The HTML report in pieces: its content as it is rendered (each record as it is
    read), counted and hashed on the way, then the seal text stating that count and
    the digest line."""
    seal, size = hashlib.sha256(), 0
    for text in _html_content(body):
        data = text.encode()
        seal.update(data)
        size += len(data)
        yield data
    tail = _seal_text(_settled(lambda n: size + len(_seal_text(n).encode()))).encode()
    seal.update(tail)
    yield tail
    yield (seal.hexdigest() + "\n").encode()


def _html_content(body: dict[str, Any]) -> Iterator[str]:
    yield (
        f"{HTML_START}<head><meta charset='utf-8'>\n"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">\n"
        f"<title>Sealcheck evidence report {_e(body['generated_at'])}</title>\n"
        f"<style>{_CSS}</style></head><body>\n"
    )
    yield "<h1>Sealcheck evidence report</h1>\n"
    yield _table(
        [
            ("Generated", body["generated_at"]),
            ("By", f"sealcheck {body['generated_by']['version']}"),
            ("Host", body["generated_by"]["host"]),
            ("Entries", str(len(body["entries"]))),
            ("Signed by", sections.signature_rows(body)[0][1] if "chain" in body else None),
        ]
    )
    if "campaign" in body:
        rows = sections.campaign_rows(body["campaign"])
        yield "<h2 class='end'>Audit campaign</h2>\n"
        yield _table(rows)
    if "coverage" in body:
        yield _html_coverage(body["coverage"])
    for r in entries_of(body):
        yield _HTML_PREFIX_RECORD.get(r["kind"], _html_record)(r)
    if "chain" in body:
        yield from _html_closing(body)


def _seal_text(sealed: int) -> str:
    """Everything from the seal mark to just before the digest, for a sealed part of
    ``sealed`` bytes (this text included)."""
    total = sealed + SEAL_LINE_BYTES
    return (
        SEAL_MARK.format(sealed=sealed) + "\n"
        "<footer><p><strong>SHA-256 of this report:</strong> the last line of this file, "
        f"below. It is the digest of the first {sealed} bytes of the file, everything "
        f"before that line; the file is exactly {total} bytes and ends with it, so "
        "content added before, inside or after the report breaks the seal.</p>\n"
        "<p class='small'>Check it (bash; name the file report.html, or change "
        f"<code>f=</code>): <code>{_e(SHELL_CHECK)}</code><br>"
        "A digest is tamper-evident, not a signature: compare it with the copy "
        "filed apart from this report.</p></footer>\n"
        f"{SEAL_OPEN}"
    )


def _settled(length: Callable[[int], int]) -> int:
    """The n with ``length(n) == n``: the sealed part's byte count, which it states.

    Stating it changes the length; the count only grows by whole digits, so a few
    rounds from 0 reach the fixed point.
    """
    n = 0
    for _ in range(8):
        m = length(n)
        if m == n:
            return n
        n = m
    raise AssertionError("the sealed length did not settle")


def _e(value: Any) -> str:
    return escape("–" if value is None else str(value), quote=True)


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>\n" for k, v in rows)
    return f"<table>\n{cells}</table>\n"


EMBED_OPEN = "<pre id='sealcheck-evidence'>"


def _embedded(value: Any) -> str:
    # json.dumps's text, faster; order kept: re-renders the same.
    return indented.dumps(value, 1, ensure_ascii=True)


def _html_closing(body: dict[str, Any]) -> Iterator[str]:
    controls = "".join(
        f"<tr><td>{_e(c)}</td><td>{_e(what)}</td></tr>\n" for c, what in sections.CONTROLS
    )
    yield (
        "<h2 class='end'>Chain and signature</h2>\n"
        + _table(sections.signature_rows(body))
        + f"<p>{_e(sections.VERIFY_HOWTO)}</p>\n"
        + "<h2 class='end'>Controls this evidence supports</h2>\n<table>\n"
        + f"<tr><th>Control</th><th style='width:auto'>Evidence</th></tr>\n{controls}</table>\n"
        + "<details><summary>Machine-readable evidence (what report verify checks)</summary>"
        + EMBED_OPEN
    )
    # The body itself, escaped piece by piece (escaping is character by character).
    for piece in spliced(body, ["entries"], _embedded, entries_of(body), indent=1):
        yield _e(piece)
    yield "</pre></details>\n"


def _html_coverage(rows: list[dict[str, Any]]) -> str:
    counts = sections.coverage_counts(rows)
    head = "".join(f"<th>{_e(c)}</th>" for c in sections.COVERAGE_COLUMNS)
    cells = "".join(
        "<tr>" + "".join(f"<td>{_e(r.get(c))}</td>" for c in sections.COVERAGE_COLUMNS) + "</tr>\n"
        for r in rows
    )
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    return (
        f"<h2 class='end'>Coverage</h2>\n<p>{_e(summary)}</p>\n"
        f"<table>\n<tr>{head}</tr>\n{cells}</table>\n"
    )


def _html_campaign_record(r: dict[str, Any]) -> str:
    return (
        f"<h2>#{_e(r['history_id'])} audit campaign: {_e(r['where'])}</h2>\n"
        + _html_verdict({**r, "failed_layer": None})
        + _table(sections.campaign_rows(r["result"]))
    )


def _html_rotation_record(r: dict[str, Any]) -> str:
    return (
        f"<h2>#{_e(r['history_id'])} key rotation: {_e(r['where'])}</h2>\n"
        + _html_verdict({**r, "failed_layer": None})
        + _table(sections.rotation_rows(r["result"]))
    )


# Records about a prefix rather than one version, each with its own section.
_HTML_PREFIX_RECORD = {
    Kind.AUDIT.value: _html_campaign_record,
    Kind.ROTATION.value: _html_rotation_record,
}


def _html_record(r: dict[str, Any]) -> str:
    obj, t = r["object"], r["timings"]
    out = [
        f"<h2>#{_e(r['history_id'])} {_e(r['kind'])}: {_e(obj['uri'])}</h2>\n",
        _html_verdict(r),
        _table(
            [
                ("Bucket", obj["bucket"]),
                ("Key / path", obj["key"]),
                ("Version id", obj["version_id"]),
                ("ETag", obj["etag"]),
                ("Size (bytes)", obj["size"]),
                ("Last modified", obj["last_modified"]),
                ("SHA-256 of the object", obj["object_sha256"]),
                ("SHA-256 of the plaintext", obj["plaintext_sha256"]),
                ("Plaintext bytes", obj["plaintext_bytes"]),
                ("Wrapped key", _wrapped(r["wrapped_key"])),
                ("Formats", " > ".join(r["formats"]) or None),
                ("Started", t.get("started_at")),
                ("Duration (s)", t.get("duration_s")),
                *([("Load / checks / total (s)", _rto(t))] if "total_s" in t else []),
                ("Recorded", r["recorded_at"]),
                ("Host", r["host"]),
                ("OS user", r["os_user"]),
                ("Trigger", r["trigger"]),
                ("Opened with key", _key_text(r["opened_with"])),
                ("Backup age when checked (s)", r["age_at_check_s"]),
                *([("Targets", sections.target_text(r["targets"]))] if r.get("targets") else []),
                (
                    "Record hash (previous)",
                    f"{r['chain']['record_hash']} ({r['chain']['prev_hash']})",
                ),
                ("Sealcheck", r["sealcheck_version"]),
                ("Written to", r["destination"]),
            ]
        ),
        "<table>\n<tr><th>Layer</th><th>Status</th>"
        "<th style='width:auto'>What it proved</th></tr>\n",
    ]
    for lay in r["layers"]:
        cls = {"ok": "ok", "failed": "failed", "warning": "warning"}.get(lay["status"], "")
        details = "; ".join(f"{k}: {v}" for k, v in lay["details"].items() if v not in (None, ""))
        small = f"<br><span class='small'>{_e(details)}</span>" if details else ""
        out.append(
            f"<tr><td>{_e(lay['layer'])}</td><td class='{cls}'>{_e(lay['status'])}</td>"
            f"<td>{_e(lay['proved'])}{small}</td></tr>\n"
        )
    out.append("</table>\n")
    if r["error"]:
        cls = _VERDICT_CLASS[Verdict(r["verdict_code"])]
        out.append(f"<p class='{cls}'>{_e(r['error']['message'])}</p>\n")
    out += [f"<p class='warning'>Warning: {_e(w)}</p>\n" for w in r["warnings"]]
    if r["restore_test"]:
        out.append(_html_tables(r["restore_test"]))
    full = json.dumps(r["result"], indent=2, ensure_ascii=False)
    out.append(f"<details><summary>Full record</summary><pre>{_e(full)}</pre></details>\n")
    return "".join(out)


_VERDICT_CLASS = {Verdict.OK: "ok", Verdict.FAILED: "failed", Verdict.NOT_CHECKED: "notchecked"}


def _html_verdict(r: dict[str, Any]) -> str:
    verdict = Verdict(r["verdict_code"])
    span = f"<span class='{_VERDICT_CLASS[verdict]}'>{_e(r['verdict'])}</span>"
    code = f"(exit code {_e(r['exit_code'])})"
    if verdict is Verdict.NOT_CHECKED:
        return f"<p>Verdict: {span}: {_e(NOT_CHECKED_MEANING)} {code}.</p>\n"
    where = f" at the {_e(r['failed_layer'])} layer" if r["failed_layer"] and not r["ok"] else ""
    return f"<p>Verdict: {span}{where} {code}</p>\n"


def _key_text(k: dict[str, Any] | None) -> str | None:
    return f"{k['fingerprint']} ({k['held']})" if k else None


def _rto(t: dict[str, Any]) -> str:
    return f"{t['load_s']} / {t['checks_s']} / {t['total_s']}"


def _wrapped(w: dict[str, Any] | None) -> str | None:
    if not w:
        return None
    return f"{w['uri']} (version {w['version_id'] or '–'}, ETag {w['etag'] or '–'})"


def _html_tables(rt: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(t['schema'])}.{_e(t['name'])}</td><td>{_e(t['rows'])}</td>"
        f"<td>{_e(t['expected_rows'])}</td><td><code>{_e(t['checksum'])}</code></td>"
        f"<td class='{'ok' if t['ok'] else 'failed'}'>{'ok' if t['ok'] else 'FAILED'}"
        f" {_e(t['note'])}</td></tr>\n"
        for t in rt["tables"]
    )
    return (
        f"<p>Restored into {_e(rt['server'])} ({_e(rt['mode'])}): views {_e(rt['views'])}, "
        f"triggers {_e(rt['triggers'])}, routines {_e(rt['routines'])}, "
        f"events {_e(rt['events'])}; clean-up: {_e(rt.get('cleanup', 'not recorded'))}</p>\n"
        "<table>\n<tr><th>Table</th><th>Rows</th><th>Rows in dump</th><th>Checksum</th>"
        f"<th>Check</th></tr>\n{rows}</table>\n"
    )

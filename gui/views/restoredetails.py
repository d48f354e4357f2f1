"""The Details pane's restore-test section: what came back, how long it took, what the
dump tried, and what changed since the previous result, in words a DBA reads.

Failures come first everywhere (a table that lost its rows must not hide on row 300),
and a table that had rows before and has none now is highlighted: the drift an
auditor must not miss.

The HTML names classes (``bad``, ``emptied``), never colours: the pane's default style
sheet (``theme.rich_text_css``) gives them colours that read on the current palette.
"""

from __future__ import annotations

import html

from sealcheck.core.records.restore_result import Drift, RestoreTestResult, TableResult
from sealcheck.core.records.verdict import Verdict

from ..errortext import NOT_CHECKED_TITLE, describe
from ..state.results import duration_text, size_text

MAX_TABLES = 400  # the pane stays fast; the verdict and every failing table come first
MAX_LIST = 20
BAD = 'class="bad"'  # failure text (theme.Tone.FAILED)
EMPTIED = 'class="emptied"'  # a row marked as emptied since the previous result


def _e(text: object) -> str:
    return html.escape(str(text))


def _n(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def verdict(r: RestoreTestResult) -> str:
    """The restore test's verdict in one sentence."""
    if r.ok:
        rows = sum(t.rows or 0 for t in r.tables)
        text = (
            f"Restore test passed: {plural(len(r.tables), 'table')} and {plural(rows, 'row')} "
            f"came back into {r.server or r.engine}, exactly as the dump holds them"
        )
        if r.hostile:  # never a plain pass: the dump loaded, confined
            text += f", but the dump tried {plural(len(r.hostile), 'thing')} a backup should not do"
        return text
    if r.error is None:
        return "Restore test FAILED"
    msg = describe(r.error)
    if msg.verdict is Verdict.NOT_CHECKED:
        return f"Restore test {NOT_CHECKED_TITLE}: {msg.headline.lower()}"
    return f"Restore test FAILED: {msg.headline.lower()}"


def render(r: RestoreTestResult) -> str:
    parts = [
        "<h4>Restore test</h4>",
        f"<p><b>{_e(verdict(r))}.</b></p>",
        _server(r),
    ]
    if r.load_error is not None:
        parts.append(_load_error(r))
    parts.append(_times(r))
    if r.tables:
        parts.append(_tables(r))
    parts.append(_objects(r))
    parts += _lists(r)
    if r.drift is not None:
        parts.append(_drift(r.drift))
    if r.cleanup_status.startswith("left"):
        parts.append(f"<p>⚠ Clean-up: {_e(r.cleanup_status)}</p>")
    if r.cleanup:
        parts.append(f"<p><small>Clean-up: {_e('; '.join(r.cleanup))}.</small></p>")
    return "".join(parts)


def mode_words(r: RestoreTestResult) -> str:
    """The server and what was done to it afterwards, as the clean-up list records it:
    a test stopped before it created anything must not claim to have dropped it."""
    done = r.cleanup
    if r.mode == "server":
        if any(c.startswith("could not drop") for c in done):
            return "an existing server; the scratch database could not be dropped (see Clean-up)"
        if any(c.startswith("dropped scratch database") for c in done):
            return "an existing server; the scratch database was dropped afterwards"
        return "an existing server; no scratch database was created on it"
    if r.mode == "throwaway":
        if "stopped the throwaway server" in done or any(
            c.startswith("wiped ") and not c.startswith("wiped orphan") for c in done
        ):
            return "a throwaway server, deleted with its files afterwards"
        return "throwaway mode"
    return str(r.mode)


def _server(r: RestoreTestResult) -> str:
    mode = mode_words(r)
    server = f"<b>{_e(r.server)}</b>" if r.server else f"{_e(r.engine)} (no server was started)"
    dump = r.dump or {}
    producer = " ".join(str(x) for x in (dump.get("producer"), dump.get("producer_version")) if x)
    what = "Physical backup" if dump.get("physical") else "Dump"
    made = f"<br>{what}: {_e(producer)}" if producer else ""
    if dump.get("bytes"):
        made += f"{',' if producer else f'<br>{what}:'} {_e(size_text(int(dump['bytes'])))}"
        if dump.get("statements"):
            made += f", {int(dump['statements']):,} statements"
    dbs = f"<br>Databases: {_e(', '.join(r.databases))}" if r.databases else ""
    return f"<p>Server: {server}, {_e(mode)}.{made}{dbs}</p>"


def _load_error(r: RestoreTestResult) -> str:
    le = r.load_error
    assert le is not None
    where = f"The load stopped at line {le.line:,}" if le.line is not None else "The load stopped"
    code = f" (error {_e(le.code)})" if le.code else ""
    stmt = (
        f"<br>The statement on that line:<br><code>{_e(_short(le.statement, 400))}</code>"
        if le.statement
        else ""
    )
    return f"<p {BAD}><b>{where}</b>{code}: {_e(le.message)}{stmt}</p>"


def _times(r: RestoreTestResult) -> str:
    def t(s: float | None) -> str:
        return "–" if s is None else (f"{s:.1f} s" if s < 60 else duration_text(s))

    steps = r.physical_steps()
    return (
        f"<p>Load {t(r.load_seconds)}{f' ({_e(steps)})' if steps else ''}, "
        f"checks {t(r.checks_seconds)}, "
        f"<b>total {t(r.total_seconds)}</b> (the time to a checked, usable database: the "
        "recovery time this backup gives).</p>"
    )


def _tables(r: RestoreTestResult) -> str:
    emptied = set(r.drift.emptied) if r.drift is not None else set()

    def key(t: TableResult) -> str:
        return t.name if "." in t.name else f"{t.schema}.{t.name}"

    order = sorted(r.tables, key=lambda t: (t.ok, key(t) not in emptied, key(t)))
    rows = [
        '<table cellspacing="0" cellpadding="3" border="1">'
        "<tr><th>Table</th><th>Rows restored</th><th>Rows in dump</th>"
        "<th>Checksum</th><th>OK</th></tr>"
    ]
    for t in order[:MAX_TABLES]:
        k = key(t)
        bg = f" {EMPTIED}" if k in emptied else ""
        mark = '<span class="ok">✔</span>' if t.ok else f"<span {BAD}>✘ {_e(t.note)}</span>"
        if k in emptied:
            mark += f" <b {BAD}>now empty</b>"
        rows.append(
            f"<tr{bg}><td>{_e(k)}</td><td align=right>{_n(t.rows)}</td>"
            f"<td align=right>{_n(t.expected_rows)}</td><td>{_e(t.checksum or '–')}</td>"
            f"<td>{mark}</td></tr>"
        )
    rows.append("</table>")
    if len(order) > MAX_TABLES:
        rows.append(f"<p>… and {len(order) - MAX_TABLES:,} more tables, all OK.</p>")
    return "".join(rows)


def _objects(r: RestoreTestResult) -> str:
    out = []
    for label, items in (
        ("view", r.views),
        ("trigger", r.triggers),
        ("routine", r.routines),
        ("event", r.events),
    ):
        names = ", ".join(items[:10]) + (" …" if len(items) > 10 else "")
        out.append(plural(len(items), label) + (f" <small>({_e(names)})</small>" if items else ""))
    if r.views or r.triggers or r.routines or r.events:
        text = f"<p>Also restored: {'; '.join(out)}.</p>"
    else:
        text = "<p>The dump has no views, triggers, routines or events.</p>"
    if r.missing:
        missing = "".join(f"<li>{_e(m)}</li>" for m in r.missing[:MAX_LIST])
        text += (
            f"<p {BAD}><b>Missing after the load</b> (the dump creates them):</p><ul>{missing}</ul>"
        )
    return text


def _lists(r: RestoreTestResult) -> list[str]:
    out = []
    if r.hostile:
        items = "".join(
            f"<li>line {_e(h.get('line'))}: {_e(h.get('kind'))}: "
            f"<code>{_e(_short(str(h.get('statement') or '')))}</code></li>"
            for h in r.hostile[:MAX_LIST]
        )
        out.append(
            "<p><b>The dump tried things a backup should not do</b> (refused by the server "
            "or by Sealcheck; the dump is loaded by an account that can reach nothing but "
            f"its own database):</p><ul>{items}</ul>"
        )
    if r.roles_created:
        items = "".join(f"<li>{_e(x)}</li>" for x in r.roles_created[:MAX_LIST])
        out.append(
            "<p>Accounts and roles made for the test (dropped with it on an existing "
            "server):</p>"
            f"<ul>{items}</ul>"
        )
    if r.rewritten:
        items = "".join(f"<li>{_e(_short(x))}</li>" for x in r.rewritten[:MAX_LIST])
        out.append(f"<p>Statements adapted for the test:</p><ul>{items}</ul>")
    if r.warnings:
        items = "".join(f"<li>{_e(_short(w))}</li>" for w in r.warnings[:MAX_LIST])
        more = (
            f"<li>… and {len(r.warnings) - MAX_LIST} more</li>"
            if len(r.warnings) > MAX_LIST
            else ""
        )
        out.append(f"<p>⚠ Warnings:</p><ul>{items}{more}</ul>")
    return out


def _drift(d: Drift) -> str:
    # The queue names the baseline by version and time tested ("version X, tested …").
    head = f"<p><b>Compared with the previous result</b>, {_e(d.baseline)}:</p>"
    items = [f"<li {BAD}><b>{_e(k)} is now empty</b></li>" for k in d.emptied]
    items += [
        f"<li>{_e(c.name)}: {_n(c.before)} → {_n(c.after)} rows</li>"
        for c in d.row_changes
        if c.name not in d.emptied
    ]
    items += [f"<li>table added: {_e(k)}</li>" for k in d.tables_added]
    items += [f"<li {BAD}>table removed: {_e(k)}</li>" for k in d.tables_removed]
    items += [
        f"<li>{_e(k)}: the same number of rows, different content (checksum)</li>"
        for k in d.checksum_changes
        if k not in {c.name for c in d.row_changes}
    ]
    if not items:
        return head.replace(":</p>", ": no drift, the same tables with the same rows.</p>")
    return head + "<ul>" + "".join(items[:60]) + "</ul>"

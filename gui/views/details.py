"""The Details pane: the per-layer evidence of a version's last verification, in words
(and, after a restore test, its own section from ``restoredetails``).

The HTML names classes (``ok``, ``bad``, ``warn``, ``neutral``), never colours; the pane's default
style sheet colours them from the current palette and is rebuilt, and the page shown
again, when the palette changes (the OS switched between light and dark).
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QTextBrowser, QWidget

from sealcheck.core.records.report import Report, Status
from sealcheck.core.storage.listing import version_text

from ..errortext import LAYER_TITLES, NOT_CHECKED_TITLE, STATUS_WORDS
from ..look.theme import rich_text_css
from ..state.results import Outcome, VersionState, age_text, duration_text, size_text
from ..state.versions import VersionRow
from . import restoredetails

_MARK = {
    Status.OK: '<span class="ok">✔</span>',
    Status.FAILED: '<span class="bad">✘</span>',
    Status.WARNING: '<span class="warn">⚠</span>',
    Status.SKIPPED: "–",
    Status.NOT_REACHED: "…",
    Status.INCOMPLETE: "…",
    Status.NOT_CHECKED: '<span class="neutral">?</span>',
}


def _e(text: object) -> str:
    return html.escape(str(text))


def render(row: VersionRow | None, state: VersionState | Outcome | None) -> str:
    if row is None:
        return "<p>Select a version to see what its last verification proved.</p>"
    state = as_state(state)
    d = row.data
    parts = [
        f"<h3>{_e(d.key)}</h3>",
        "<p>",
        f"Version <b>{_e(version_text(d.version_id))}</b>, uploaded "
        f"{_e(d.last_modified.astimezone().strftime('%Y-%m-%d %H:%M:%S'))}, "
        f"{_e(size_text(d.size))}.",
    ]
    if row.key is not None:
        parts.append(f" Wrapped key version <b>{_e(version_text(row.key.version_id))}</b>.")
    if row.flag:
        parts.append(f'<br><b class="warn">Attention:</b> {_e(row.flag)}.')
    parts.append("</p>")
    if state is None:
        parts.append("<p>Not verified yet. Press <b>Verify</b> (Ctrl+R, or Enter in the list).</p>")
        return "".join(parts)
    if state.attempt is not None:
        parts.append(_not_checked(state.attempt, state.verdict is not None))
    if state.verdict is not None:
        parts += _outcome(state.verdict)
    elif state.attempt is not None:
        parts.append("<h4>What the attempt reached</h4>")
        parts += _outcome(state.attempt, headline=False)
    return "".join(parts)


def as_state(value: VersionState | Outcome | None) -> VersionState | None:
    """A lone outcome as the state it makes (a setup problem is no verdict)."""
    if isinstance(value, Outcome):
        return VersionState(value) if value.verdict.is_verdict else VersionState(None, value)
    return value


def _not_checked(attempt: Outcome, verdict_below: bool) -> str:
    msg = attempt.message
    head = (
        f'<p><b>Latest attempt {_e(age_text(attempt.when))}: <span class="neutral">'
        f"{_e(NOT_CHECKED_TITLE)}</span></b>. This is no verdict on the backup"
    )
    head += ": the last verdict below still stands.</p>" if verdict_below else ".</p>"
    if msg is None:
        return head
    where = f" while {_e(msg.layer)}" if msg.layer else ""
    return (
        f"{head}<p><b>{_e(msg.headline)}</b>{where}.<br>What to do: {_e(msg.advice)}</p>"
        f"<p><small>{_e(msg.details)}</small></p>"
    )


def _outcome(outcome: Outcome, *, headline: bool = True) -> list[str]:
    parts = []
    rt = outcome.restore_test
    rep = outcome.report
    if headline:
        verdict = "verified: every layer below holds" if outcome.ok else "FAILED"
        if rt is not None:
            verdict = "restore test passed" if outcome.ok else "restore test FAILED"
        tone = "ok" if outcome.ok else "bad"
        parts.append(
            f'<p><b>Last check {_e(age_text(outcome.when))}: <span class="{tone}">{verdict}</span>'
            "</b>"
        )
        if rt is not None:
            parts.append(f" (restore test, {_e(duration_text(rt.total_seconds))})")
        elif rep is not None:
            parts.append(f" ({_e(rep.operation)}, {_e(duration_text(rep.duration_s))})")
        parts.append("</p>")
        msg = outcome.message
        if msg is not None:
            where = f" while {_e(msg.layer)}" if msg.layer else ""
            parts.append(
                f"<p><b>{_e(msg.headline)}</b>{where}.<br>What to try: {_e(msg.advice)}</p>"
                f"<p><small>{_e(msg.details)}</small></p>"
            )
    if rt is not None:
        parts.append(restoredetails.render(rt))
        if rep is not None:
            parts.append("<h4>Download, decryption and decompression</h4>")
    if rep is not None:
        parts += _layers(rep)
    return parts


def _layers(rep: Report) -> list[str]:
    parts = ['<table cellspacing="0" cellpadding="4">']
    for layer in rep.layers:
        title = LAYER_TITLES.get(layer.layer, layer.layer)
        parts.append(
            f"<tr><td>{_MARK[layer.status]}</td><td><b>{_e(title)}</b></td>"
            f"<td>{_e(STATUS_WORDS[layer.status])}</td><td>{_e(layer.proved)}</td></tr>"
        )
    parts.append("</table>")
    if rep.formats:
        parts.append(f"<p>Formats found: {_e(' → '.join(rep.formats))}</p>")
    for w in rep.warnings:
        parts.append(f'<p><span class="warn">⚠</span> {_e(w)}</p>')
    hashes = rep.layer("hashes")
    if hashes is not None and hashes.details.get("plaintext_sha256"):
        parts.append(
            f"<p><small>SHA-256 of the object: {_e(hashes.details.get('ciphertext_sha256'))}"
            f"<br>SHA-256 of the plaintext: {_e(hashes.details['plaintext_sha256'])}"
            "</small></p>"
        )
    return parts


class DetailsPane(QTextBrowser):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Verification details")
        self.setOpenLinks(False)
        self._shown: tuple[VersionRow | None, VersionState | Outcome | None] = (None, None)
        self.document().setDefaultStyleSheet(rich_text_css(self.palette()))
        self.show_version(None, None)

    def show_version(self, row: VersionRow | None, state: VersionState | Outcome | None) -> None:
        self._shown = (row, state)
        self.setHtml(render(row, state))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            # The style sheet applies when HTML is parsed: set it, then parse again.
            self.document().setDefaultStyleSheet(rich_text_css(self.palette()))
            scroll = self.verticalScrollBar().value()
            self.setHtml(render(*self._shown))
            self.verticalScrollBar().setValue(scroll)

"""The Details pane: the per-layer evidence of a version's last verification, in words
(and, after a restore test, its own section from ``restoredetails``).

The HTML names classes (``ok``, ``bad``, ``warn``), never colours; the pane's default
style sheet colours them from the current palette and is rebuilt, and the page shown
again, when the palette changes (the OS switched between light and dark).
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QTextBrowser, QWidget

from sealcheck.core.report import Status

from . import restoredetails
from .errortext import LAYER_TITLES, STATUS_WORDS
from .models import VersionRow
from .results import Outcome, age_text, duration_text, size_text
from .theme import rich_text_css

_MARK = {
    Status.OK: '<span class="ok">✔</span>',
    Status.FAILED: '<span class="bad">✘</span>',
    Status.WARNING: '<span class="warn">⚠</span>',
    Status.SKIPPED: "–",
    Status.NOT_REACHED: "…",
}


def _e(text: object) -> str:
    return html.escape(str(text))


def render(row: VersionRow | None, outcome: Outcome | None) -> str:
    if row is None:
        return "<p>Select a version to see what its last verification proved.</p>"
    d = row.data
    parts = [
        f"<h3>{_e(d.key)}</h3>",
        "<p>",
        f"Version <b>{_e(d.version_id or 'null')}</b>, uploaded "
        f"{_e(d.last_modified.astimezone().strftime('%Y-%m-%d %H:%M:%S'))}, "
        f"{_e(size_text(d.size))}.",
    ]
    if row.key is not None:
        parts.append(f" Wrapped key version <b>{_e(row.key.version_id or 'null')}</b>.")
    if row.flag:
        parts.append(f'<br><b class="warn">Attention:</b> {_e(row.flag)}.')
    parts.append("</p>")
    if outcome is None:
        parts.append("<p>Not verified yet. Press <b>Verify</b> (Ctrl+R, or Enter in the list).</p>")
        return "".join(parts)
    rt = outcome.restore_test
    verdict = "verified: every layer below holds" if outcome.ok else "FAILED"
    if rt is not None:
        verdict = "restore test passed" if outcome.ok else "restore test FAILED"
    tone = "ok" if outcome.ok else "bad"
    parts.append(
        f'<p><b>Last check {_e(age_text(outcome.when))}: <span class="{tone}">{verdict}</span></b>'
    )
    rep = outcome.report
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
        parts.append('<table cellspacing="0" cellpadding="4">')
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
    return "".join(parts)


class DetailsPane(QTextBrowser):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Verification details")
        self.setOpenLinks(False)
        self._shown: tuple[VersionRow | None, Outcome | None] = (None, None)
        self.document().setDefaultStyleSheet(rich_text_css(self.palette()))
        self.show_version(None, None)

    def show_version(self, row: VersionRow | None, outcome: Outcome | None) -> None:
        self._shown = (row, outcome)
        self.setHtml(render(row, outcome))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            # The style sheet applies when HTML is parsed: set it, then parse again.
            self.document().setDefaultStyleSheet(rich_text_css(self.palette()))
            scroll = self.verticalScrollBar().value()
            self.setHtml(render(*self._shown))
            self.verticalScrollBar().setValue(scroll)

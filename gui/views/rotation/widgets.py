"""Small pieces the wizard's pages share: a wrapped, selectable label; a failure in the
app's words (errortext)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from ...errortext import describe
from ...jobs.worker import Failure


def label(text: str, name: str) -> QLabel:
    lab = QLabel(text)
    lab.setWordWrap(True)
    lab.setAccessibleName(name)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return lab


def failure_text(failure: Failure | BaseException) -> str:
    exc = failure.exc if isinstance(failure, Failure) else failure
    msg = describe(exc)
    return f"✘ {msg.headline}: {msg.details}\n{msg.advice}"

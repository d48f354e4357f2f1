"""Before queuing many jobs: will they be able to run at all?

Queuing 700 verifications for a source without a usable key would end in 700 rows
saying the same thing. The pre-flight gathers the source's secrets once (as every job
would, on the GUI thread: a PEM passphrase or a token PIN is asked here, then kept for
the session) and, when that fails, one warning says why and what to do; nothing is
queued. The secrets gathered for the check are wiped at once.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from sealcheck.core.errors import SealcheckError

from ..errortext import UserMessage, describe
from ..state.keysession import KeySession
from ..state.settings import KeyChoice


def key_problem(keys: KeySession, choice: KeyChoice) -> UserMessage | None:
    """Why no job of this source can start, or None when its keys can be gathered."""
    try:
        secrets = keys.secrets(choice)
    except SealcheckError as exc:
        return describe(exc)
    secrets.wipe()
    return None


def warn(parent: QWidget, count: int, what: str, source: str, msg: UserMessage) -> QMessageBox:
    """A window-modal warning, opened without blocking (``open``); returns the box."""
    box = QMessageBox(parent)
    box.setObjectName("preflight")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("These jobs cannot succeed")
    box.setText(f"None of the {count} {what} of {source} can succeed: {msg.headline}.")
    box.setInformativeText(f"{msg.advice}\nNothing was queued.")
    box.setDetailedText(msg.details)
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box

"""Small dialogs: add/edit a source, a PIN or passphrase prompt."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from sealcheck.core.errors import UsageError
from sealcheck.core.naming import Rule

from .settings import KeyChoice, SourceConfig


def _line(name: str, text: str | None = "", placeholder: str = "") -> QLineEdit:
    w = QLineEdit(text or "")
    w.setAccessibleName(name)
    w.setPlaceholderText(placeholder)
    return w


class SourceDialog(QDialog):
    """Add or edit an S3 location. Credentials come from the AWS profile, never from here."""

    def __init__(self, source: SourceConfig | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit source" if source else "Add source")
        self.setAccessibleName(self.windowTitle())
        s = source or SourceConfig(name="", bucket="")
        self._keys = s.keys
        self.name = _line("Source name", s.name, "Production backups")
        self.bucket = _line("Bucket", s.bucket, "my-backups")
        self.prefix = _line("Prefix", s.prefix, "mysql/ (optional)")
        self.endpoint = _line("Endpoint URL", s.endpoint_url, "https://s3.example.com (optional)")
        self.profile = _line("AWS profile", s.profile, "default chain (optional)")
        self.region = _line("Region", s.region, "us-east-1 (optional)")
        self.rules = QPlainTextEdit("\n".join(s.rules))
        self.rules.setAccessibleName("Naming rules")
        self.rules.setPlaceholderText("one DATA_SUFFIX:KEY_SUFFIX per line (optional)")
        self.rules.setTabChangesFocus(True)
        self.rules.setFixedHeight(self.fontMetrics().lineSpacing() * 4)
        form = QFormLayout()
        for label, w in (
            ("&Name:", self.name),
            ("&Bucket:", self.bucket),
            ("&Prefix:", self.prefix),
            ("&Endpoint URL:", self.endpoint),
            ("AWS pro&file:", self.profile),
            ("&Region:", self.region),
            ("Naming r&ules:", self.rules),
        ):
            lab = QLabel(label)
            lab.setBuddy(w)
            form.addRow(lab, w)
        note = QLabel("Credentials come from the AWS profile or environment; none are stored here.")
        note.setWordWrap(True)
        self.error = QLabel()
        self.error.setAccessibleName("Problem")
        self.error.setWordWrap(True)
        self.error.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(self.error)
        lay.addWidget(self.buttons)
        self.name.setFocus()

    def value(self) -> SourceConfig:
        """The typed source; raises UsageError with a sentence for the user."""
        name, bucket = self.name.text().strip(), self.bucket.text().strip()
        if not bucket:
            raise UsageError("a bucket name is needed")
        if "/" in bucket or bucket.startswith("s3:"):
            raise UsageError("give the bucket name alone; put folders in Prefix")
        rules = tuple(r.strip() for r in self.rules.toPlainText().splitlines() if r.strip())
        for r in rules:
            Rule.parse(r)
        return SourceConfig(
            name=name or bucket,
            bucket=bucket,
            prefix=self.prefix.text().strip(),
            endpoint_url=self.endpoint.text().strip() or None,
            profile=self.profile.text().strip() or None,
            region=self.region.text().strip() or None,
            rules=rules,
            keys=self._keys,
        )

    def accept(self) -> None:
        try:
            self.value()
        except UsageError as exc:
            self.error.setText(exc.detail or exc.summary)
            self.error.show()
            return
        super().accept()


class SecretDialog(QDialog):
    """Asks for a PIN or a passphrase. The text never leaves this dialog except to its caller."""

    def __init__(self, title: str, prompt: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setAccessibleName(title)
        label = QLabel(prompt)
        label.setWordWrap(True)
        self.field = QLineEdit()
        self.field.setEchoMode(QLineEdit.EchoMode.Password)
        self.field.setAccessibleName(title)
        # No input-method suggestions or autocomplete history for secrets.
        self.field.setInputMethodHints(
            Qt.InputMethodHint.ImhHiddenText | Qt.InputMethodHint.ImhSensitiveData
        )
        label.setBuddy(self.field)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(label)
        lay.addWidget(self.field)
        lay.addWidget(buttons)

    def secret(self) -> bytes:
        data = self.field.text().encode()
        self.field.clear()
        return data


def ask_secret(parent: QWidget | None, title: str, prompt: str) -> bytes | None:
    dlg = SecretDialog(title, prompt, parent)
    try:
        return dlg.secret() if dlg.exec() == QDialog.DialogCode.Accepted else None
    finally:
        dlg.deleteLater()


def with_keys(source: SourceConfig, keys: KeyChoice) -> SourceConfig:
    from dataclasses import replace

    return replace(source, keys=keys)

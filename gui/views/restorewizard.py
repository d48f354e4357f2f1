"""The Restore test wizard: engine, server, summary, Start.

Page 1 runs core's finders for server software on a worker (they start a few
programs) while Next stays disabled, and says what to install when something is
missing. Page 2 chooses a throwaway server (the default) or an existing local one.
Page 3 sums up and starts. The result is a ``RestoreTestSpec``: a DSN and a
password *file path*, never a password.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from urllib.parse import urlsplit

from PySide6.QtCore import QSize, QThreadPool
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QStyle,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from sealcheck.core.errors import SealcheckError, UsageError
from sealcheck.core.restoretest.dsn import parse_dsn
from sealcheck.core.restoretest.engines.mariadb import find_mariabackup, find_tools
from sealcheck.core.restoretest.engines.postgres import find_pg_tools

from ..jobs.spec import RestoreTestSpec
from ..jobs.worker import Failure, Worker, WorkerContext
from ..look.sizes import fit_to_screen, text_lines, text_width


class Page(IntEnum):
    ENGINE = 0
    SERVER = 1
    SUMMARY = 2


ENGINE_CHOICES = (
    ("auto", "&Automatic, from the dump's header (recommended)"),
    ("mariadb", "&MariaDB"),
    ("mysql", "M&ySQL (loaded into a MariaDB server)"),
    ("postgres", "&PostgreSQL"),
)
ENGINE_NAMES = {
    "auto": "automatic (from each dump's header)",
    "mariadb": "MariaDB",
    "mysql": "MySQL (loaded into MariaDB)",
    "postgres": "PostgreSQL",
}
DSN_EXAMPLES = {
    "my": "mysql://USER@localhost/?socket=/run/mysqld/mysqld.sock",
    "pg": "postgresql://USER@/?host=/var/run/postgresql",
}


@dataclass(frozen=True)
class Software:
    """What this machine has for one server family, in words."""

    family: str  # "MariaDB/MySQL" or "PostgreSQL"
    server: str | None  # the server found: a throwaway server can start
    client: str | None  # the client found (enough for an existing server)
    missing: str | None  # core's message: what is missing and what to install


@dataclass(frozen=True)
class Found:
    my: Software
    pg: Software
    # Physical backups (xbstream): mariabackup prepares them for a throwaway MariaDB.
    physical: Software | None = None

    def for_engine(self, engine: str) -> Software:
        return self.pg if engine == "postgres" else self.my


def find_software(_ctx: WorkerContext | None = None) -> Found:
    """Core's finders for both families (runs programs: call it on a worker)."""
    return Found(_mariadb(), _postgres(), _mariabackup())


def _mariabackup() -> Software:
    try:
        return Software("mariabackup (physical backups)", find_mariabackup(), None, None)
    except SealcheckError as exc:
        return Software("mariabackup (physical backups)", None, None, exc.message())


def physical_blocker(found: Found | None) -> str | None:
    """What a physical backup's restore test lacks here: a MariaDB server and mariabackup
    (core says the same when the test runs)."""
    if found is None or found.physical is None:
        return None
    for sw in (found.my, found.physical):
        if sw.server is None:
            return f"Physical backups cannot be started here: {sw.missing}"
    return None


def _mariadb() -> Software:
    try:
        t = find_tools(need_server=True)
        return Software("MariaDB/MySQL", " ".join(t.version.split()), t.client, None)
    except SealcheckError as exc:
        missing = exc.message()
    try:
        client = find_tools(need_server=False).client
    except SealcheckError:
        client = None
    return Software("MariaDB/MySQL", None, client, missing)


def _postgres() -> Software:
    try:
        t = find_pg_tools(need_server=True)
        return Software("PostgreSQL", f"{t.version} in {t.bindir}", str(t.bindir / "psql"), None)
    except SealcheckError as exc:
        missing = exc.message()
    try:
        client = str(find_pg_tools(need_server=False).bindir / "psql")
    except SealcheckError:
        client = None
    return Software("PostgreSQL", None, client, missing)


def software_html(s: Software) -> str:
    name = f"<b>{html.escape(s.family)}</b>"
    if s.server:
        return f"✔ {name}: {html.escape(s.server)}"
    text = f"✘ {name}: not on this machine"
    if s.client:
        text += f" (the client {html.escape(s.client)} is here: an existing server can be used)"
    return text + f".<br><small>{html.escape(s.missing or '')}</small>"


def dsn_family(dsn: str) -> str | None:
    scheme = urlsplit(dsn.strip()).scheme
    return {"mysql": "my", "mariadb": "my", "postgres": "pg", "postgresql": "pg"}.get(scheme)


def _label(text: str, name: str) -> QLabel:
    lab = QLabel(text)
    lab.setWordWrap(True)
    lab.setAccessibleName(name)
    return lab


class EnginePage(QWizardPage):
    def __init__(self, hints: list[str], initial: str, physical: int = 0) -> None:
        super().__init__()
        self.physical = physical
        self.setTitle("Which database server loads the backup?")
        self.setSubTitle(
            "Sealcheck reads each dump's header and picks the server; choose one only to "
            "override that."
        )
        self.found: Found | None = None
        self.group = QButtonGroup(self)
        lay = QVBoxLayout(self)
        for i, (key, text) in enumerate(ENGINE_CHOICES):
            b = QRadioButton(text)
            b.setAccessibleName(f"Engine: {text.replace('&', '')}")
            b.setProperty("engine", key)
            b.setChecked(key == initial)
            self.group.addButton(b, i)
            lay.addWidget(b)
        self.hint = _label(
            f"The selected backups look like: {', '.join(sorted(set(hints)))}.", "Hint"
        )
        self.hint.setVisible(bool(hints))
        lay.addWidget(self.hint)
        what = "is a physical backup" if physical == 1 else "are physical backups"
        self.physical_note = _label(
            f"{physical} of them {what} (xbstream): extracted into a private folder, "
            "prepared with mariabackup and started in a throwaway MariaDB without network, "
            "whatever is chosen here.",
            "Physical backups",
        )
        self.physical_note.setVisible(physical > 0)
        lay.addWidget(self.physical_note)
        lay.addSpacing(8)
        lay.addWidget(QLabel("Server software on this machine:"))
        self.software = _label("Looking for database server software…", "Server software found")
        lay.addWidget(self.software)
        lay.addStretch()

    @property
    def engine(self) -> str:
        b = self.group.checkedButton()
        return str(b.property("engine")) if b is not None else "auto"

    def set_found(self, found: Found | None, problem: str | None = None) -> None:
        self.found = found
        if found is None:
            self.software.setText(f"Could not look for server software: {problem}")
        else:
            lines = [software_html(found.my), software_html(found.pg)]
            if self.physical and found.physical is not None:
                lines.append(software_html(found.physical))
            self.software.setText("<br>".join(lines))
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.found is not None  # Next waits for the search on page 1


class ServerPage(QWizardPage):
    def __init__(self, initial: RestoreTestSpec) -> None:
        super().__init__()
        self.setTitle("Where does it load?")
        self.throwaway = QRadioButton("&Throwaway server (recommended)")
        self.throwaway.setAccessibleName("Throwaway server (recommended)")
        self.why = why = _label(
            "Sealcheck starts a private, locked-down server from this machine's software, "
            "loads the backup, checks it and deletes the server and its files; nothing else "
            "is touched.",
            "About the throwaway server",
        )
        self.existing = QRadioButton("An &existing local server")
        self.existing.setAccessibleName("An existing local server")
        self.dsn = QLineEdit(initial.server or "")
        self.dsn.setAccessibleName("Server address (DSN)")
        self.dsn.setPlaceholderText(DSN_EXAMPLES["my"])
        self.password = QLineEdit(str(initial.password_file or ""))
        self.password.setAccessibleName("Password file")
        self.password.setPlaceholderText("optional: a file holding only the password")
        self.browse = QPushButton("B&rowse…")
        self.browse.setAccessibleName("Browse for the password file")
        self.browse.clicked.connect(self._browse)
        self.warning = _label(
            "⚠ This account only creates a scratch database (sealcheck_rt_…) and a fresh "
            "account that can reach nothing else; the dump is loaded as that account, and "
            "both are dropped at the end. So this account must be allowed to create "
            "databases and accounts (MariaDB: CREATE USER and GRANT OPTION, e.g. root; "
            "PostgreSQL: a superuser, or CREATEROLE and CREATEDB). The load uses "
            "the server's CPU, memory and disk: use a test server, not production. Local "
            "sockets only; the password is read from its file when the test connects and is "
            "never stored.",
            "Warning about the existing server",
        )
        self.problem = _label("", "Problem")
        form = QFormLayout()
        dsn_label = QLabel("Server &address:")
        dsn_label.setBuddy(self.dsn)
        pw_row = QHBoxLayout()
        pw_row.addWidget(self.password, 1)
        pw_row.addWidget(self.browse)
        pw_label = QLabel("Pass&word file:")
        pw_label.setBuddy(self.password)
        form.addRow(dsn_label, self.dsn)
        form.addRow(pw_label, pw_row)
        self.form = QWidget()
        inner = QVBoxLayout(self.form)
        # Indented to line up with the radio button's text, whatever the style and scale.
        style = self.style()
        indent = style.pixelMetric(QStyle.PixelMetric.PM_ExclusiveIndicatorWidth)
        indent += style.pixelMetric(QStyle.PixelMetric.PM_RadioButtonLabelSpacing)
        inner.setContentsMargins(indent, 0, 0, 0)
        inner.addLayout(form)
        inner.addWidget(self.warning)
        lay = QVBoxLayout(self)
        lay.addWidget(self.throwaway)
        lay.addWidget(why)
        lay.addSpacing(8)
        lay.addWidget(self.existing)
        lay.addWidget(self.form)
        lay.addWidget(self.problem)
        lay.addStretch()
        (self.existing if initial.server else self.throwaway).setChecked(True)
        for w in (self.throwaway, self.existing):
            w.toggled.connect(self._changed)
        self.dsn.textChanged.connect(self._changed)
        self.password.textChanged.connect(self._changed)

    def initializePage(self) -> None:
        engine = self._engine()
        self.dsn.setPlaceholderText(DSN_EXAMPLES["pg" if engine == "postgres" else "my"])
        self._changed()

    def _engine(self) -> str:
        wiz = self.wizard()
        return wiz.engine_page.engine if isinstance(wiz, RestoreTestWizard) else "auto"

    def _found(self) -> Found | None:
        wiz = self.wizard()
        return wiz.engine_page.found if isinstance(wiz, RestoreTestWizard) else None

    def _browse(self) -> None:
        start = self.password.text() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Password file", start)
        if path:
            self.password.setText(path)

    def _changed(self, *_args: object) -> None:
        self.form.setEnabled(self.existing.isChecked())
        text = self.blocker() or ""
        self.problem.setText(f"⚠ {text}" if text else "")
        self.problem.setVisible(bool(text))
        self.completeChanged.emit()

    def blocker(self) -> str | None:
        """Why Next cannot go on, in words; None when the choice can work."""
        engine, found = self._engine(), self._found()
        wiz = self.wizard()
        physical = wiz.engine_page.physical if isinstance(wiz, RestoreTestWizard) else 0
        # Only physical backups: there is one way to test them.
        if physical and isinstance(wiz, RestoreTestWizard) and physical == wiz.targets:
            if self.existing.isChecked() or engine == "postgres":
                return (
                    "Physical backups (xbstream) are restore-tested in a throwaway MariaDB "
                    "started on their own files: choose the throwaway server and an engine "
                    "other than PostgreSQL"
                )
            return physical_blocker(found)
        if self.throwaway.isChecked():
            return _throwaway_blocker(engine, found)
        dsn = self.dsn.text().strip()
        if not dsn:
            return "Enter the address of the server, e.g. " + DSN_EXAMPLES["my"]
        family = dsn_family(dsn)
        if family is None:
            return "The address starts with mysql://, mariadb:// or postgresql://"
        if engine != "auto" and family != ("pg" if engine == "postgres" else "my"):
            return f"A {ENGINE_NAMES[engine]} restore test needs a matching server address"
        try:
            parse_dsn(dsn, "postgres" if family == "pg" else "mysql", None)
        except UsageError as exc:
            return str(exc.message()).replace("--server-password-file", "the password file")
        pw = self.password.text().strip()
        if pw and not os.access(pw, os.R_OK):
            return f"The password file {pw} cannot be read"
        if found is not None:
            sw = found.pg if family == "pg" else found.my
            if sw.client is None:
                return f"No {sw.family} client on this machine: {sw.missing}"
        return None

    def isComplete(self) -> bool:
        return self.blocker() is None


def _throwaway_blocker(engine: str, found: Found | None) -> str | None:
    if found is None:
        return None
    if engine == "auto":
        if found.my.server is None and found.pg.server is None:
            return (
                "No database server is installed here to start a throwaway one: "
                f"{found.my.missing} — or {found.pg.missing}. Or use an existing server."
            )
        return None
    sw = found.for_engine(engine)
    if sw.server is None:
        return f"No {sw.family} server here to start a throwaway one: {sw.missing}"
    return None


class SummaryPage(QWizardPage):
    def __init__(self, targets: list[str]) -> None:
        super().__init__()
        self.setTitle("Ready to start")
        self._targets = targets
        self.text = _label("", "Summary")
        lay = QVBoxLayout(self)
        lay.addWidget(self.text)
        lay.addStretch()

    def initializePage(self) -> None:
        wiz = self.wizard()
        assert isinstance(wiz, RestoreTestWizard)
        self.text.setText(
            summary_html(
                wiz.value(), self._targets, wiz.engine_page.found, wiz.engine_page.physical
            )
        )


def summary_html(
    spec: RestoreTestSpec, targets: list[str], found: Found | None, physical: int = 0
) -> str:
    e = html.escape
    n = len(targets)
    shown = "".join(f"<li>{e(t)}</li>" for t in targets[:8])
    more = f"<li>… and {n - 8} more</li>" if n > 8 else ""
    parts = [
        f"<p>{n} restore test{'s' if n != 1 else ''} will be queued and run one at a time:</p>"
        f"<ul>{shown}{more}</ul>",
        f"<p><b>Engine:</b> {e(ENGINE_NAMES[spec.engine])}</p>",
    ]
    if spec.server:
        pw = f", password from {e(str(spec.password_file))}" if spec.password_file else ""
        parts.append(
            f"<p><b>Server:</b> the existing server at {e(spec.server)}{pw}. A scratch "
            "database and an account confined to it are created there, the dump is loaded "
            "as that account, and both are dropped at the end.</p>"
        )
    else:
        parts.append(
            "<p><b>Server:</b> a throwaway server for each test, deleted with its files "
            "afterwards.</p>"
        )
        if found is not None and spec.engine == "auto":
            for sw in (found.my, found.pg):
                if sw.server is None:
                    parts.append(
                        f"<p>⚠ Dumps that need {e(sw.family)} will fail: {e(sw.missing or '')}</p>"
                    )
    if physical:
        missing = physical_blocker(found)
        parts.append(
            f"<p><b>Physical backups:</b> {physical}. Each is verified layer by layer while "
            "its files are written into a private folder, prepared with mariabackup, and "
            "checked in a throwaway MariaDB started on them (socket only, no network), "
            "whatever server is chosen for the dumps. A backup of a server not installed "
            "here (MySQL 8.0 by Percona XtraBackup) is verified and reported as not "
            "checked, with what to install.</p>" + (f"<p>⚠ {e(missing)}</p>" if missing else "")
        )
    parts.append(
        "<p>Each result is compared with the previous restore test of the same backup, when "
        "there is one (drift). <b>Cancel</b> in the Jobs panel stops a test within seconds "
        "and removes its server and files.</p>"
    )
    return "".join(parts)


class RestoreTestWizard(QWizard):
    """``targets``: the job titles; ``hints``: what the selected backups look like;
    ``physical``: how many of them are physical backups (xbstream)."""

    def __init__(
        self,
        targets: list[str],
        hints: list[str] | None = None,
        initial: RestoreTestSpec | None = None,
        parent: QWidget | None = None,
        physical: int = 0,
    ) -> None:
        super().__init__(parent)
        initial = initial or RestoreTestSpec()
        self.setWindowTitle("Restore test")
        self.setAccessibleName("Restore test wizard")
        # ~80 characters by ~26 lines of the UI font, within the screen at any scale.
        self.setMinimumSize(fit_to_screen(self, QSize(text_width(self, 80), text_lines(self, 26))))
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setButtonText(QWizard.WizardButton.FinishButton, "&Start")
        self.targets = len(targets)
        self.engine_page = EnginePage(hints or [], initial.engine, physical)
        self.server_page = ServerPage(initial)
        self.summary_page = SummaryPage(targets)
        self.setPage(Page.ENGINE, self.engine_page)
        self.setPage(Page.SERVER, self.server_page)
        self.setPage(Page.SUMMARY, self.summary_page)
        self._initial = initial
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        w = Worker(find_software)
        w.signals.returned.connect(self.engine_page.set_found)
        w.signals.errored.connect(self._on_finder_failed)
        self._finder = w
        w.start(self._pool)

    def _on_finder_failed(self, failure: Failure) -> None:
        self.engine_page.set_found(None, f"{type(failure.exc).__name__}: {failure.exc}")

    def value(self) -> RestoreTestSpec:
        sp = self.server_page
        existing = sp.existing.isChecked()
        pw = sp.password.text().strip()
        return RestoreTestSpec(
            engine=self.engine_page.engine,
            server=sp.dsn.text().strip() if existing else None,
            password_file=Path(pw).expanduser() if existing and pw else None,
            max_seconds=self._initial.max_seconds,
        )

    def done(self, result: int) -> None:
        # The finders take a second at most; let them end before the wizard goes.
        self._finder.wait(10)
        self._pool.waitForDone(10_000)
        super().done(result)

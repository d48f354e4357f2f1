"""The desktop app's quality items, proved on real widgets: every control has a name a
screen reader says, the keyboard reaches everything and every action has a shortcut,
status colours read on light and dark palettes (and follow a live switch), and icons
and layouts hold at 200 %."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import (
    QAccessible,
    QColor,
    QGuiApplication,
    QIcon,
    QImage,
    QKeySequence,
    QPainter,
    QPalette,
)
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTabBar,
    QTextEdit,
    QWidget,
)

from fixtures.gui_flow import open_window, select_version
from sealcheck.core.errors import IntegrityError
from sealcheck.core.keys.custody import KeyStore
from sealcheck.core.records.restore_result import LoadError, RestoreTestResult, TableResult
from sealcheck.core.restoretest.drift import compare
from sealcheck.gui.jobs.queue import JobState
from sealcheck.gui.look import icons, theme
from sealcheck.gui.state.results import Outcome
from sealcheck.gui.state.settings import KeyChoice
from sealcheck.gui.state.versions import VersionRow
from sealcheck.gui.views.about import about_box
from sealcheck.gui.views.crash import ExceptionDialog
from sealcheck.gui.views.details import render
from sealcheck.gui.views.dialogs import SecretDialog, SourceDialog
from sealcheck.gui.views.keydialogs import ImportKeyDialog
from sealcheck.gui.views.mainwindow import MainWindow
from sealcheck.gui.views.restorewizard import RestoreTestWizard
from sealcheck.gui.views.tokenpicker import TokenPickerDialog

REPO = Path(__file__).resolve().parents[2]
INTERACTIVE = (
    QAbstractButton,  # push, tool (toolbar actions too), radio and check buttons
    QLineEdit,
    QComboBox,
    QAbstractSpinBox,
    QAbstractItemView,  # tables, lists, headers
    QTextEdit,
    QPlainTextEdit,
    QTabBar,
)


# --- helpers ---------------------------------------------------------------------------


def accessible_name(w: QWidget) -> str:
    """The name Qt gives assistive technology: accessibleName, else the visible text
    (mnemonic stripped), else a buddy label's text."""
    iface = QAccessible.queryAccessibleInterface(w)
    return iface.text(QAccessible.Text.Name).strip() if iface is not None else ""


def _words(text: str) -> str:
    text = text.replace("&&", "\0").replace("&", "").replace("\0", "&")
    text = text.replace("…", "").replace("...", "").rstrip(":")
    return " ".join(text.split()).casefold()


def name_problems(root: QWidget) -> list[str]:
    """Every interactive widget under ``root`` without a spoken name, or whose name
    leaves out its visible label (WCAG 2.5.3: a voice user says what they see)."""
    out = []
    for w in [root, *root.findChildren(QWidget)]:
        if not isinstance(w, INTERACTIVE):
            continue
        internal = w.objectName().startswith("qt_") or isinstance(w, QHeaderView)
        if internal and not w.isVisibleTo(root):
            continue  # Qt's own parts that this window never shows
        name = accessible_name(w)
        what = f"{type(w).__name__} {w.objectName() or ''} {getattr(w, 'text', lambda: '')()!r}"
        if not name:
            out.append(f"no name: {what}")
        elif isinstance(w, QAbstractButton) and w.text() and _words(w.text()) not in _words(name):
            out.append(f"name {name!r} leaves out the label: {what}")
        if isinstance(w, QTabBar):
            out += [f"tab {i} of {what} has no text" for i in range(w.count()) if not w.tabText(i)]
    return out


def _mnemonics(win: MainWindow) -> list[str]:
    """The Alt+letter keys of what is visible now: menus, tabs, buttons, labels."""
    texts = [a.text() for a in win.menuBar().actions()]
    tabs = win.tabs.tabBar()
    texts += [tabs.tabText(i) for i in range(tabs.count())]
    for w in win.findChildren(QWidget):
        if not w.isVisibleTo(win):
            continue
        if isinstance(w, QAbstractButton) and not w.objectName().startswith("qt_"):
            if w.parent() is not win.toolbar:
                texts.append(w.text())
        elif isinstance(w, QLabel) and w.buddy() is not None:
            texts.append(w.text())
    keys = []
    for t in texts:
        m = re.search(r"&([^&\s])", t.replace("&&", ""))
        if m:
            keys.append(m.group(1).casefold())
    return keys


@pytest.fixture
def palettes(qapp: QApplication) -> Iterator[dict[str, QPalette]]:
    """The light (the style's own) and a dark palette; the app's palette is reset after."""
    light = QPalette(qapp.palette())
    try:
        yield {"light": light, "dark": theme.dark_palette()}
    finally:
        qapp.setPalette(QPalette())  # no palette of our own: back to the theme's
        qapp.processEvents()
        assert qapp.palette().color(QPalette.ColorRole.Base) == light.color(QPalette.ColorRole.Base)


def _set_palette(qapp: QApplication, pal: QPalette) -> None:
    qapp.setPalette(pal)
    qapp.processEvents()


# --- 1. accessible names ------------------------------------------------------------------


def test_every_control_of_the_main_window_has_a_name(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source(KeyChoice())])
    # Show what only some states show: a failed job (its Details expander open),
    # the filter's clear button, the listing banner.
    select_version(win, "securecircle/1567744961188141183.sql.gz", 0)
    (rec,) = win.verify_selected()
    assert rec.state is JobState.FAILED
    row = win.job_panel.row(rec)
    row.toggle.setChecked(True)
    win.browser.filter.setText("sql")
    win.browser.banner.show()
    qtbot.wait(10)
    assert row.details.isVisibleTo(win) and row.toggle.isVisibleTo(win)
    assert name_problems(win) == []
    win.tabs.setCurrentWidget(win.keys_scroll)
    qtbot.wait(10)
    assert win.keys_page.import_btn.isVisibleTo(win)
    assert name_problems(win) == []
    assert accessible_name(row.cancel).startswith("Cancel ")
    # Menus and the toolbar: every action says what it does.
    for menu_action in win.menuBar().actions():
        assert menu_action.text()
        for a in menu_action.menu().actions():
            assert a.isSeparator() or a.text(), menu_action.text()
    for a in win.toolbar.actions():
        assert a.isSeparator() or (a.text() and a.toolTip()), a


def test_every_dialog_control_has_a_name(qtbot, tmp_path):
    from sealcheck.gui.state.settings import SourceConfig

    dialogs: list[QWidget] = [
        SourceDialog(),
        SourceDialog(SourceConfig(name="prod", bucket="b")),
        SecretDialog("Token PIN", "PIN of the token"),
        ImportKeyDialog(KeyStore(tmp_path / "keys")),
        TokenPickerDialog(modules=[]),
        ExceptionDialog(IntegrityError("boom"), "Traceback: ..."),
        about_box(),
    ]
    for dlg in dialogs:
        qtbot.addWidget(dlg)
        dlg.show()
        assert dlg.accessibleName() or dlg.windowTitle()
        assert name_problems(dlg) == [], dlg.windowTitle()

    wiz = RestoreTestWizard(["Restore test shop.sql.gz (2026-11-27 03:00)"], ["MariaDB"])
    qtbot.addWidget(wiz)
    wiz.show()
    qtbot.waitUntil(lambda: wiz.engine_page.found is not None, timeout=20000)
    for _page in range(3):  # every page, as a user walks through them
        assert name_problems(wiz) == [], wiz.currentPage().title()
        wiz.next()
    with qtbot.waitSignal(wiz.finished, timeout=15000):
        wiz.reject()


def test_mnemonics_are_unique_on_every_page(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    for page in (win.browser, win.keys_scroll, win.history_view):
        win.tabs.setCurrentWidget(page)
        qtbot.wait(10)
        keys = _mnemonics(win)
        assert len(keys) == len(set(keys)), sorted(keys)


# --- 2. keyboard ------------------------------------------------------------------------


def _focus_chain(qtbot, win: MainWindow, start: QWidget, stop, limit: int = 40) -> list[QWidget]:
    """Press Tab from ``start`` until ``stop(widget)``; the widgets focused on the way."""
    start.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is start, timeout=2000)
    seen = [start]
    for _ in range(limit):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        w = QApplication.focusWidget()
        seen.append(w)
        if stop(w):
            break
    return seen


def test_tab_reaches_the_tables_details_and_a_jobs_cancel(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.big_source()])
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=2000)
    versions = win.browser.versions_view
    versions.setFocus()
    versions.setCurrentIndex(win.browser.versions.index(0, 0))
    # Enter on a version verifies it (~48 MB, about a second each); four times, so the
    # last waits in the queue for the ones before it while the keyboard gets to it.
    with qtbot.waitSignal(win.queue.added, timeout=1000):
        qtbot.keyClick(versions, Qt.Key.Key_Return)
    for _ in range(3):
        qtbot.keyClick(versions, Qt.Key.Key_Return)
    first, *_, queued = win.queue.records
    assert len(win.queue.records) == 4 and first.spec.operation == "verify"
    assert queued.state is JobState.QUEUED
    cancel = win.job_panel.row(queued).cancel
    qtbot.waitUntil(lambda: cancel.isVisible(), timeout=2000)

    chain = _focus_chain(qtbot, win, win.sources, lambda w: w is cancel)
    assert chain[-1] is cancel, [type(w).__name__ for w in chain]
    order = [win.browser.sets_view, versions, win.browser.details, cancel]
    positions = [chain.index(w) for w in order]
    assert positions == sorted(positions)  # in reading order
    assert win.tabs.tabBar() in chain and win.browser.filter in chain
    # Space on the focused Cancel cancels that job; Ctrl+. cancels the rest.
    qtbot.keyClick(cancel, Qt.Key.Key_Space)
    assert queued.state is JobState.CANCELLED
    qtbot.keyClick(win, Qt.Key.Key_Period, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=30000)
    states = [r.state for r in win.queue.records]
    assert set(states) <= {JobState.CANCELLED, JobState.DONE}
    assert JobState.CANCELLED in states[:-1]  # Ctrl+. cancelled what was left
    # Shift+Tab goes back the same way.
    win.browser.details.setFocus()
    qtbot.keyClick(win.browser.details, Qt.Key.Key_Backtab)
    assert QApplication.focusWidget() is versions


def test_actions_have_unique_shortcuts_that_work(qtbot, tmp_path, demo_s3_bucket):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=2000)
    expected = {
        win.add_act: "Ctrl+N",
        win.edit_act: "Ctrl+E",
        win.refresh_act: "F5",
        win.verify_act: "Ctrl+R",
        win.restore_act: "Ctrl+Shift+S",
        win.restore_test_act: "Ctrl+T",
        win.cancel_act: "Ctrl+.",
        win.find_act: "Ctrl+F",
    }
    for action, keys in expected.items():
        assert QKeySequence(keys) in action.shortcuts(), action.text()
        if action is not win.find_act:
            assert keys in action.toolTip(), action.toolTip()  # discoverable
    taken: dict[str, str] = {}
    for a in win.findChildren(type(win.verify_act)):
        for seq in a.shortcuts():
            key = seq.toString()
            assert key not in taken, f"{key}: {taken[key]} and {a.text()}"
            taken[key] = a.text()

    # Ctrl+F: to the filter, from anywhere (the Keys page too).
    win.tabs.setCurrentWidget(win.keys_scroll)
    win.keys_page.table.setFocus()
    qtbot.keyClick(win.keys_page.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is win.browser.filter
    # Enter on a backup goes to its versions; Ctrl+R verifies the selected version.
    sets = win.browser.sets_view
    sets.setFocus()
    sets.setCurrentIndex(win.browser.proxy.index(0, 0))
    qtbot.keyClick(sets, Qt.Key.Key_Return)
    assert QApplication.focusWidget() is win.browser.versions_view
    select_version(win, "dpb587/database.sql.gz.enc", 0)
    with qtbot.waitSignal(win.queue.added, timeout=1000):
        qtbot.keyClick(win.browser.versions_view, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=30000)
    assert win.queue.records[-1].state is JobState.DONE
    # F5 lists the source again.
    with qtbot.waitSignal(win.browser.listing_finished, timeout=20000):
        qtbot.keyClick(win.browser.versions_view, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: not win.browser.listing, timeout=10000)


# --- 3. light and dark ------------------------------------------------------------------

COLOUR_LITERAL = re.compile(
    r"""["'][^"']*#[0-9a-fA-F]{3,8}\b|QColor\(|Qt\.GlobalColor\.(?!transparent)|color\s*:|bgcolor"""
)


def test_no_colour_is_hard_coded_outside_the_theme_module():
    allowed = {"theme.py"}  # the one place with colour values (seeds, the dark palette)
    found = []
    for path in sorted((REPO / "gui").glob("*.py")):
        if path.name in allowed:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if path.name == "icons.py" and 'b"#333333"' in line:
                continue  # the SVGs' placeholder stroke, replaced by the palette's colour
            if COLOUR_LITERAL.search(line):
                found.append(f"{path.name}:{n}: {line.strip()}")
    assert found == []


def _restore_test_outcome(tmp_path: Path) -> tuple[VersionRow, Outcome]:
    """A failed restore test with every kind of bad news the pane colours."""

    def result(tables: list[tuple[str, int]], ok: bool = True) -> RestoreTestResult:
        return RestoreTestResult(
            ok=ok, engine="mariadb", server="MariaDB 10.11", mode="throwaway",
            databases=("s",), tables=tuple(TableResult(n, "s", r, r, str(r), r > 0)
                                           for n, r in tables),
            views=(), triggers=(), routines=(), events=(), missing=("view s.v",),
            load_seconds=1.0, checks_seconds=0.5, total_seconds=2.0,
            started_at="2026-11-27T03:00:00+00:00", warnings=("a warning",), hostile=(),
            roles_created=(), rewritten=(), error=None,
            load_error=LoadError(line=12, code="1064", message="syntax", statement="SELEC"),
            verification=None,
        )  # fmt: skip

    before = tmp_path / "before.json"
    before.write_text(result([("a", 5), ("payments", 700), ("gone", 3)]).to_json())
    now = result([("a", 5), ("payments", 0)], ok=False)
    now = replace(now, drift=replace(compare(now, before), baseline="version v1"))
    from sealcheck.core.storage.listing import ObjectVersion

    v = ObjectVersion("db/shop.sql.gz", "v2", 1, dt.datetime.now(dt.UTC), None, True)
    return VersionRow(v, None, "mismatch: key"), Outcome(None, None, dt.datetime.now(dt.UTC), now)


HEX = r"#[0-9a-fA-F]{6}"


def _html_colours(html: str) -> tuple[set[str], set[str]]:
    """Text and background colours of a QTextDocument's HTML (as Qt resolved them)."""
    fg = set(re.findall(rf"(?<![-\w])color:\s*({HEX})", html))
    bg = set(re.findall(rf"background-color:\s*({HEX})", html))
    bg |= set(re.findall(rf'bgcolor="({HEX})"', html))
    return fg, bg


def _readable(pal: QPalette, fg: set[str], bg: set[str]) -> list[str]:
    """Pairs that fail WCAG AA: each text colour on Base and on each background used."""
    base = pal.color(QPalette.ColorRole.Base)
    grounds = [base, *(QColor(b) for b in bg)]
    texts = [pal.color(QPalette.ColorRole.Text), *(QColor(f) for f in fg)]
    return [
        f"{t.name()} on {g.name()}: {theme.contrast(t, g):.2f}"
        for t in texts
        for g in grounds
        if theme.contrast(t, g) < theme.MIN_CONTRAST
    ]


def _icon_colour(ic: QIcon) -> QColor:
    img = ic.pixmap(QSize(20, 20), 1.0).toImage()
    px = [img.pixelColor(x, y) for x in range(img.width()) for y in range(img.height())]
    return max(px, key=lambda c: c.alpha())


def test_status_colours_read_on_light_and_dark_and_follow_a_switch(
    qtbot, qapp, tmp_path, demo_s3_bucket, palettes
):
    win = open_window(qtbot, tmp_path, [demo_s3_bucket.source()])
    good, flipped = demo_s3_bucket.expect[0], demo_s3_bucket.expect[-1]
    for e in (good, flipped):
        select_version(win, e.key, e.version_index)
        win.verify_selected()
    qtbot.waitUntil(lambda: not win.queue.busy, timeout=30000)
    ok_rec, bad_rec = win.queue.records
    assert ok_rec.state is JobState.DONE and bad_rec.state is JobState.FAILED
    vm, details = win.browser.versions, win.browser.details
    fail_cell = vm.index(win.browser.selected_version_rows()[0], vm.RESULT_COLUMN)
    assert fail_cell.data().startswith("FAILED")
    rt_row, rt_outcome = _restore_test_outcome(tmp_path)
    seen_icons = {}

    for name, pal in palettes.items():
        _set_palette(qapp, pal)
        bgs = theme.backgrounds(pal)
        # The models: the failed result in a colour that reads on the rows and stripes.
        for tone in theme.Tone:
            c = theme.status_color(tone)
            assert min(theme.contrast(c, b) for b in bgs) >= theme.MIN_CONTRAST, (name, tone)
        brush = fail_cell.data(Qt.ItemDataRole.ForegroundRole)
        assert brush.color() == theme.status_color(theme.Tone.FAILED), name
        for tone in theme.Tone:  # a tone is not the text colour: it stands out
            assert theme.status_color(tone) != pal.color(QPalette.ColorRole.Text)
        # The Details pane, live: a failed verification, then a failed restore test.
        win.browser.versions_view.clearSelection()
        select_version(win, flipped.key, flipped.version_index)
        html = details.toHtml()
        assert "Decompressor check" in details.toPlainText()
        fg, bg = _html_colours(html)
        assert (
            theme.status_color(theme.Tone.FAILED, pal, (theme.tint(theme.Tone.FAILED, pal),)).name()
            in fg
        )
        assert _readable(pal, fg, bg) == [], name
        details.show_version(rt_row, rt_outcome)
        fg, bg = _html_colours(details.toHtml())
        assert theme.tint(theme.Tone.FAILED, pal).name() in bg  # the emptied table's row
        assert _readable(pal, fg, bg) == [], name
        # The toolbar's icons are redrawn in the palette's text colour.
        seen_icons[name] = _icon_colour(win.verify_act.icon())
        want = pal.color(QPalette.ColorRole.WindowText)
        assert theme.contrast(seen_icons[name], want) < 1.1, name

    assert seen_icons["light"] != seen_icons["dark"]
    # Qt 6.5+ also says when the OS colour scheme changes: the icons are made again.
    key = win.verify_act.icon().cacheKey()
    QGuiApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert win.verify_act.icon().cacheKey() != key
    # The HTML itself names classes, never a colour: nothing is fixed dark-on-light.
    for text in (render(rt_row, rt_outcome), render(*_outcome_of(win, fail_cell))):
        assert not re.search(r"#[0-9a-fA-F]{3,8}\b|color\s*:|bgcolor|rgb\(", text), text


def _outcome_of(win: MainWindow, cell) -> tuple[VersionRow, Outcome | None]:
    vm = win.browser.versions
    return vm.row_at(cell.row()), vm.outcome(cell.row())


# --- 4. high DPI ------------------------------------------------------------------------


def _opaque_share(img: QImage) -> float:
    n = img.width() * img.height()
    return (
        sum(
            img.pixelColor(x, y).alpha() > 128
            for x in range(img.width())
            for y in range(img.height())
        )
        / n
    )


ICON_NAMES = sorted(p.stem for p in (REPO / "resources" / "icons").glob("*.svg"))


@pytest.mark.parametrize("name", ICON_NAMES)
def test_icons_are_sharp_at_every_scale(qapp, name):
    assert len(ICON_NAMES) >= 10
    ic = icons.icon(name)
    assert not ic.isNull()
    svg = (REPO / "resources" / "icons" / f"{name}.svg").read_bytes()
    colour = qapp.palette().color(QPalette.ColorRole.WindowText).name().encode()
    renderer = QSvgRenderer(svg.replace(b"#333333", colour))
    for logical in icons.LOGICAL_SIZES:
        for dpr in (1.0, 1.25, 1.5, 2.0, 3.0):
            pm = ic.pixmap(QSize(logical, logical), dpr)
            px = round(logical * dpr)
            assert pm.devicePixelRatio() == dpr and pm.size() == QSize(px, px), (logical, dpr)
            img = pm.toImage().convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
            assert _opaque_share(img) > 0.04, "rendered empty: is QtSvg working?"
            # Drawn at this very size from the SVG, not a smaller pixmap scaled up.
            exact = QImage(QSize(px, px), QImage.Format.Format_ARGB32_Premultiplied)
            exact.fill(Qt.GlobalColor.transparent)
            p = QPainter(exact)
            renderer.render(p)
            p.end()
            assert img == exact, (logical, dpr)


def test_the_desktop_icon_renders_through_qts_svg_plugin(qapp):
    """The .desktop/AppStream icon goes through Qt's SVG icon engine (a plugin): a missing
    plugin gives an empty icon, not an error."""
    path = REPO / "resources" / "io.github.sealcheck.Sealcheck.svg"
    pm = QIcon(str(path)).pixmap(QSize(64, 64), 2.0)
    assert pm.devicePixelRatio() == 2.0 and pm.size() == QSize(128, 128)
    assert _opaque_share(pm.toImage()) > 0.1


def test_window_and_dialogs_fit_a_200_percent_laptop_screen(tmp_path):
    """A 1920x1080 screen at 200 % (QT_SCALE_FACTOR=2): 960x540 logical pixels."""
    config = tmp_path / "screen.json"
    config.write_text(
        json.dumps({"screens": [{"name": "laptop", "x": 0, "y": 0, "width": 1920,
                                 "height": 1080, "logicalDpi": 96, "logicalBaseDpi": 96}]})
    )  # fmt: skip
    env = dict(os.environ, QT_SCALE_FACTOR="2", QT_QPA_PLATFORM=f"offscreen:configfile={config}")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    probe = Path(__file__).with_name("hidpi_probe.py")
    out = subprocess.run(
        [sys.executable, str(probe)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["dpr"] == 2.0 and got["screen"] == [960, 540]
    assert got["problems"] == [], got

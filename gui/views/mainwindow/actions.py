"""The main window's actions: toolbar, menus, context menus and shortcuts, which are
offered for the selection, and icons that follow the OS's light/dark switch.

``ActionWindow`` is the base of ``MainWindow`` (window.py): it builds the actions once
the window has its panes, and each action calls a method the window defines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, QSize, Qt
from PySide6.QtGui import QAction, QKeySequence, QResizeEvent
from PySide6.QtWidgets import (
    QApplication,
    QListWidget,
    QMainWindow,
    QMenu,
    QTabWidget,
    QToolBar,
    QToolButton,
)

from ...jobs.recover import Recovery, recovery_candidates
from ...look.icons import icon
from ...state.versions import VersionRow
from ..about import show_about
from ..browser import BackupBrowser


class ActionWindow(QMainWindow):
    """Actions, toolbar and menus (see the module's doc)."""

    # The panes, built by MainWindow before it calls _make_actions.
    browser: BackupBrowser
    tabs: QTabWidget
    sources: QListWidget
    recovery: Recovery | None
    _tab_icons: tuple[str, ...]
    _toolbar_full: int | None  # the toolbar's width with every action's words
    # What the actions call: MainWindow's methods.
    add_source: Callable[[], None]
    edit_source: Callable[[], None]
    remove_source: Callable[[], None]
    open_backup_file: Callable[[], None]
    recover_dialog: Callable[[], None]
    verify_selected: Callable[[], object]
    restore_selected_dialog: Callable[[], None]
    restore_test_dialog: Callable[[], object]
    cancel_jobs: Callable[[], bool]
    show_history: Callable[[], None]
    export_evidence: Callable[[], object]
    rotate_keys_dialog: Callable[[], object]
    targets: Callable[[], list[VersionRow]]
    _update_selection_info: Callable[[list[VersionRow]], None]

    def _action(self, text: str, icon_name: str, shortcut: Any, slot: Any, tip: str) -> QAction:
        a = QAction(icon(icon_name), text, self)
        self._icons.append((a, icon_name))
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        a.setToolTip(f"{tip} ({a.shortcut().toString()})" if shortcut else tip)
        a.setStatusTip(tip)
        a.triggered.connect(slot)
        return a

    def retint(self, *_args: object) -> None:
        """The OS switched light/dark: redraw the icons in the new text colour."""
        for a, name in self._icons:
            a.setIcon(icon(name))
        for i, name in enumerate(self._tab_icons):
            self.tabs.setTabIcon(i, icon(name))
        source_icon = icon("source")
        for i in range(self.sources.count()):
            self.sources.item(i).setIcon(source_icon)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.retint()
        elif event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._toolbar_full = None  # measure again
            self._fit_toolbar()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_toolbar()

    def _fit_toolbar(self) -> None:
        """In a narrow window (a laptop at 200 %) the source actions show their icons only
        (names in tooltips and for screen readers), so the job actions keep their words
        instead of going into the toolbar's » menu."""
        bar = getattr(self, "toolbar", None)
        if bar is None:
            return
        full = self._toolbar_full
        if full is None:
            self._compact_toolbar(False)
            full = self._toolbar_full = bar.sizeHint().width()
        horizontal = bar.orientation() == Qt.Orientation.Horizontal
        self._compact_toolbar(horizontal and self.width() < full)

    def _compact_toolbar(self, on: bool) -> None:
        low, normal = QAction.Priority.LowPriority, QAction.Priority.NormalPriority
        for a in (self.add_act, self.edit_act, self.remove_act):
            if a.priority() != (low if on else normal):
                a.setPriority(low if on else normal)

    def _make_actions(self) -> None:
        self._icons: list[tuple[QAction, str]] = []
        self.add_act = self._action(
            "Add source…",
            "add",
            QKeySequence.StandardKey.New,
            self.add_source,
            "Add an S3 location",
        )
        self.edit_act = self._action(
            "Edit source…", "edit", "Ctrl+E", self.edit_source, "Edit the selected source"
        )
        self.remove_act = self._action(
            "Remove source", "remove", None, self.remove_source, "Forget the selected source"
        )
        self.open_act = self._action(
            "Open backup file…",
            "add",
            QKeySequence.StandardKey.Open,
            self.open_backup_file,
            "Open a backup file as a source (or drop files and folders on the window)",
        )
        self.recover_act = self._action(
            "Re&cover…",
            "restore",
            "Ctrl+Shift+R",
            self.recover_dialog,
            "Recover: restore the newest version that verifies (newest first, to a file)",
        )
        self.refresh_act = self._action(
            "Refresh",
            "refresh",
            "F5",  # not StandardKey.Refresh: on GNOME that is also Ctrl+R, Verify's key
            self.browser.refresh,
            "List the backups again",
        )
        self.verify_act = self._action(
            "&Verify",
            "verify",
            "Ctrl+R",
            self.verify_selected,
            "Verify the selected versions end to end (writes nothing)",
        )
        self.restore_act = self._action(
            "Restore to &file…",
            "restore",
            "Ctrl+Shift+S",
            self.restore_selected_dialog,
            "Decrypt and decompress the selected version into a file",
        )
        self.restore_test_act = self._action(
            "Restore &test…",
            "restoretest",
            "Ctrl+T",
            self.restore_test_dialog,
            "Load the selected versions into a throwaway database server and check what comes back",
        )
        self.cancel_act = self._action(
            "Cancel jobs",
            "cancel",
            "Ctrl+.",
            self.cancel_jobs,
            "Cancel every queued and running job",
        )
        self.find_act = QAction("&Find backups", self)
        self.find_act.setShortcut(QKeySequence.StandardKey.Find)
        self.find_act.setStatusTip("Filter the backups by name, format or result")
        self.find_act.triggered.connect(self._find)
        self.addAction(self.find_act)
        bar = QToolBar("Main")
        bar.setObjectName("main-toolbar")
        bar.setAccessibleName("Main toolbar")
        self.toolbar = bar
        bar.setIconSize(QSize(20, 20))
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (self.add_act, self.edit_act, self.remove_act):
            bar.addAction(a)
        bar.addSeparator()
        for a in (
            self.refresh_act,
            self.verify_act,
            self.restore_act,
            self.recover_act,
            self.restore_test_act,
            self.cancel_act,
        ):
            bar.addAction(a)
        self.addToolBar(bar)
        menu = self.menuBar()
        # Qt's overflow buttons (shown when the window is narrow) have no name of their own.
        for owner, name in ((bar, "qt_toolbar_ext_button"), (menu, "qt_menubar_ext_button")):
            ext = owner.findChild(QToolButton, name)
            if ext is not None:
                ext.setAccessibleName("More actions" if owner is bar else "More menus")
        m = menu.addMenu("&Source")
        for a in (self.add_act, self.open_act, self.edit_act, self.remove_act, self.refresh_act):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.find_act)
        j = menu.addMenu("&Jobs")
        for a in (self.verify_act, self.restore_act, self.recover_act, self.restore_test_act):
            j.addAction(a)
        j.addAction(self.cancel_act)
        self.rotate_act = QAction("&Rotate key pair…", self)
        self.rotate_act.setStatusTip(
            "Re-wrap every backup's data key for a new key pair (no data re-encrypted)"
        )
        self.rotate_act.triggered.connect(lambda: self.rotate_keys_dialog())
        # Alt+Y: Alt+K is the Keys page's tab.
        menu.addMenu("Ke&ys").addAction(self.rotate_act)
        # Recover on a backup's row too: the newest good version is one click away.
        sets_view = self.browser.sets_view
        sets_view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        sets_view.addActions([self.verify_act, self.recover_act])
        # The versions' context menu: the same actions, on what is under the pointer.
        versions = self.browser.versions_view
        versions.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        versions.addActions(
            [self.verify_act, self.restore_act, self.recover_act, self.restore_test_act]
        )
        # Enter (or a double click) on a version verifies it; on a backup, goes to its versions.
        versions.activated.connect(self._on_version_activated)
        self.browser.sets_view.activated.connect(lambda _i: versions.setFocus())
        versions.selectionModel().selectionChanged.connect(self._update_actions)
        self.browser.versions.modelReset.connect(self._update_actions)
        self.browser.sets_view.selectionModel().selectionChanged.connect(self._update_actions)
        self._update_actions()
        h = menu.addMenu("&Help")
        self.about_act = h.addAction("&About Sealcheck", lambda: show_about(self))
        self.about_act.setMenuRole(QAction.MenuRole.AboutRole)
        h.addAction("About &Qt", QApplication.aboutQt).setMenuRole(QAction.MenuRole.AboutQtRole)

    def _update_actions(self, *_args: object) -> None:
        # Nothing verifiable selected (an object that is not a backup, a delete marker):
        # the jobs are not offered.
        targets = self.targets()
        offered = bool(targets)
        self._update_selection_info(targets)
        for act in (self.verify_act, self.restore_act, self.restore_test_act):
            act.setEnabled(offered)
        idle = self.recovery is None or self.recovery.done
        backup = self.browser.versions.backup
        self.recover_act.setEnabled(idle and bool(recovery_candidates(backup)))

    def _find(self) -> None:
        self.tabs.setCurrentWidget(self.browser)
        self.browser.filter.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.browser.filter.selectAll()

    def _on_version_activated(self, index: QModelIndex) -> None:
        if index.isValid() and self.browser.versions.verifiable(index.row()):
            self.verify_selected()

    def _make_history_actions(self) -> None:
        self.show_history_act = self._action(
            "Show &history",
            "history",
            "Ctrl+H",
            self.show_history,
            "Every recorded result of the selected versions (History page)",
        )
        self.export_act = self._action(
            "&Export evidence report…",
            "export",
            "Ctrl+Shift+E",
            self.export_evidence,
            "Write an evidence report (HTML or JSON, sealed) as 'sealcheck report export' does",
        )
        jobs_menu = next(
            m
            for a in self.menuBar().actions()
            if a.text() == "&Jobs" and isinstance(m := a.menu(), QMenu)
        )
        jobs_menu.addSeparator()
        jobs_menu.addActions([self.show_history_act, self.export_act])
        self.browser.versions_view.addActions([self.show_history_act, self.export_act])

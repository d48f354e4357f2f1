"""Screenshots of the desktop app for the README, taken from a real X11 server (Xvfb).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--only SHOT ...]

Starts ``Xvfb :99`` (unless $DISPLAY is set), the demo's local S3 with its sample
backups plus one larger backup, opens the app, and saves PNGs grabbed from the X
server: the main window, a job mid-restore, an error state, the result of a restore
test (two versions restore-tested in throwaway MariaDB servers, the second showing its
drift from the first; skipped when no MariaDB server is installed), the source
editor's Keys tab (the keys a source tries, in order, its passphrase file and OpenPGP
key), the Audit tab (coverage per backup set after an "Audit now" on the demo bucket,
and the chart of coverage over time: the history's earlier days are that campaign's
real results recorded again with earlier dates, 40, 15 and 4 days back, then a second
campaign today, to show how states change with time; the source's targets as its
Audit tab sets them), the
key-rotation wizard's pages (Keys → Rotate key pair…, on the demo bucket to a
new key made by openssl genrsa; paused mid-run, then resumed), the error state after
a live switch to a dark palette (as when the OS goes dark), and the main window at
200 % (a second run of this script with QT_SCALE_FACTOR=2, in a smaller window).
``--only`` takes some of them: main-window, error-state, restore-test, source-keys,
rotation, restore-in-progress, dark, 2x, audit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHOTS = (
    "main-window",
    "error-state",
    "restore-test",
    "source-keys",
    "rotation",
    "restore-in-progress",
    "dark",
    "2x",
    "audit",
)


@contextlib.contextmanager
def xvfb(display: str = ":99") -> Iterator[None]:
    if os.environ.get("DISPLAY"):
        yield
        return
    proc = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1440x960x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ["DISPLAY"] = display
    try:
        time.sleep(1.0)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def big_backup(work: Path) -> tuple[Path, Path]:
    """~48 MB: a dump | gzip (ISA-L igzip) | openssl enc -pass file:, made with the real tools."""
    py = sys.executable
    script = f"""set -euo pipefail
    printf -- '-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\\n' > big.sql
    head -c 36000000 /dev/urandom | base64 -w 120 >> big.sql
    printf -- '-- Dump completed on 2026-11-27  3:00:00\\n' >> big.sql
    openssl rand -base64 32 > big.pass
    "{py}" -m isal.igzip -1 -c < big.sql | openssl enc -aes-256-cbc -pbkdf2 -pass file:big.pass \\
      > big.enc 2>/dev/null
    """
    subprocess.run(["bash", "-c", script], cwd=work, check=True)
    return work / "big.enc", work / "big.pass"


def wait_until(app: object, cond: Callable[[], bool], timeout: float = 60.0) -> None:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not reach the expected state")
        QApplication.processEvents()
        time.sleep(0.01)


def grab(win: object, path: Path) -> None:
    """Grab the window's area from the X server (what a user sees), not a Qt re-render."""
    from PySide6.QtWidgets import QApplication, QWidget

    assert isinstance(win, QWidget)
    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.02)
    screen = win.screen()
    frame = win.frameGeometry()
    shot = screen.grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height())
    shot.save(str(path))
    print(f"saved {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    ap.add_argument("--only", nargs="+", choices=SHOTS, default=list(SHOTS))
    ap.add_argument("--scaled", action="store_true", help=argparse.SUPPRESS)  # the 2x run
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
    work = Path(tempfile.mkdtemp(prefix="sealcheck-shots-"))
    os.environ["XDG_CONFIG_HOME"] = str(work / "config")  # never the user's saved sources
    os.environ["XDG_DATA_HOME"] = str(work / "data")
    os.environ["SEALCHECK_STATE_DIR"] = str(work / "state")  # restore-test records and locks
    try:
        with xvfb():
            os.environ["QT_QPA_PLATFORM"] = "xcb"
            if args.scaled:
                return shoot(work, args.out, {"2x"})
            rc = shoot(work, args.out, set(args.only) - {"2x"}) if set(args.only) - {"2x"} else 0
            if rc == 0 and "2x" in args.only:
                # Qt reads the scale factor once, at start: the 2x shot is another process.
                env = dict(os.environ, QT_SCALE_FACTOR="2")
                cmd = [sys.executable, __file__, "--out", str(args.out), "--scaled"]
                rc = subprocess.run(cmd, env=env, check=False).returncode
            return rc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def shoot(work: Path, out: Path, only: set[str]) -> int:
    from PySide6.QtGui import QPalette

    from sealcheck.core.storage.s3.client import S3Settings, make_client
    from sealcheck.gui.app import make_app
    from sealcheck.gui.demo import samples as demo
    from sealcheck.gui.demo.window import demo_source
    from sealcheck.gui.jobs.queue import JobState
    from sealcheck.gui.look.theme import dark_palette
    from sealcheck.gui.state.settings import KeyChoice, SourceConfig, SourceStore
    from sealcheck.gui.views.mainwindow import MainWindow

    uploads, expect, keys = demo.make_samples(work)
    big, big_pass = big_backup(work)
    with demo.demo_s3() as endpoint:
        demo._fill_bucket(endpoint, uploads)
        c = make_client(S3Settings(endpoint_url=endpoint))
        c.create_bucket(Bucket="warehouse")
        c.put_bucket_versioning(Bucket="warehouse", VersioningConfiguration={"Status": "Enabled"})
        with big.open("rb") as f:
            c.put_object(Bucket="warehouse", Key="nightly/warehouse.sql.gz.enc", Body=f)
        choice = KeyChoice(
            key_specs=(str(keys["rsa"]),),
            passphrase_file=str(keys["pass"]),
            gpg_key_file=str(keys["gpg"]),
        )
        src = demo_source(endpoint, choice, demo.BUCKET)
        big_src = SourceConfig(
            name="Warehouse (nightly)",
            bucket="warehouse",
            endpoint_url=endpoint,
            keys=KeyChoice(passphrase_file=str(big_pass)),
        )
        app = make_app([sys.argv[0]])
        win = MainWindow(SourceStore(work / "sources.json"), session_sources=[src, big_src])
        scaled = "2x" in only  # 200 %: a smaller window, as on a laptop's screen
        if scaled:
            win.resize(700, 450)
            win.move(20, 15)
        else:
            win.resize(1360, 880)
            win.move(40, 30)
        win.show()
        wait_until(app, lambda: win.browser.model.rowCount() >= 4 and not win.browser.listing)

        # 1. Main window: every demo version verified, a good one selected.
        for e in expect:
            win.browser.select_set(e.key)
            vm = win.browser.versions
            rows = [r for r in range(vm.rowCount()) if vm.verifiable(r)]
            win.browser.versions_view.selectRow(list(reversed(rows))[e.version_index])
            win.verify_selected()
        wait_until(app, lambda: not win.queue.busy, 120)
        win.browser.select_set("rds-postgres/shop.sql.bz.enc")
        win.browser.versions_view.selectRow(0)
        if "main-window" in only:
            grab(win, out / "main-window.png")
        if scaled:
            grab(win, out / "main-window-2x.png")
            win.close()
            return 0

        # 2. Error state: the damaged ClusterControl version, with the Details expander open.
        win.browser.select_set("clustercontrol/backup-full.sql.gz.aes256")
        win.browser.versions_view.selectRow(0)
        (rec,) = win.verify_selected()
        wait_until(app, lambda: rec.state is JobState.FAILED, 60)
        win.job_panel.row(rec).toggle.setChecked(True)
        win.job_panel.list_area.ensureWidgetVisible(win.job_panel.row(rec))
        if "error-state" in only:
            grab(win, out / "error-state.png")

        # 2a. The same, after the OS switched to dark: a live palette change, no restart.
        if "dark" in only:
            app.setPalette(dark_palette())
            grab(win, out / "main-window-dark.png")
            app.setPalette(QPalette())  # back to the theme's own

        # 2b. A restore test: the SecureCircle backup's two complete versions, oldest first,
        # so the newer one is compared with it; the Details pane made roomy for the shot.
        if "restore-test" in only:
            restore_test_shot(app, win, out)

        # 2c. The source editor's Keys tab: what the demo source tries, in order.
        if "source-keys" in only:
            source_keys_shot(app, win, out)

        # 2c'. The Audit tab: coverage now and over time (before the rotation rewrites keys).
        if "audit" in only:
            audit_shot(app, win, out)

        # 2d. The key-rotation wizard, page by page (it writes re-wrapped keys: last on the
        # demo bucket).
        if "rotation" in only:
            rotation_shots(app, win, work, out)
        if "restore-in-progress" not in only:
            win.close()
            return 0

        # 3. A restore in progress: stage, throughput and one ETA; then cancelled.
        win.sources.setCurrentRow(1)
        wait_until(app, lambda: win.browser.model.rowCount() == 1 and not win.browser.listing)
        win.browser.versions_view.selectRow(0)
        rec = win.restore_selected(work / "warehouse.sql")
        assert rec is not None
        wait_until(
            app,
            lambda: (
                rec.progress is not None
                and (rec.progress.fraction or 0) > 0.05
                and rec.progress.eta is not None
            ),
            60,
        )
        grab(win, out / "restore-in-progress.png")
        win.queue.cancel(rec)
        win.close()
    return 0


def source_keys_shot(app: object, win: object, out: Path) -> None:
    from sealcheck.gui.views.dialogs import SourceDialog
    from sealcheck.gui.views.mainwindow import MainWindow

    assert isinstance(win, MainWindow)
    src = win.current_source()
    assert src is not None
    dlg = SourceDialog(src, win, key_store=win.keys_page.store)
    dlg.tabs.setCurrentWidget(dlg.keys)
    dlg.resize(max(dlg.width(), 760), dlg.height())
    dlg.move(win.x() + 200, win.y() + 120)
    dlg.show()
    wait_until(app, dlg.isVisible)
    dlg.keys.specs.setCurrentRow(0)
    grab(dlg, out / "source-keys.png")
    dlg.reject()
    dlg.deleteLater()


def audit_shot(app: object, win: object, out: Path) -> None:
    import datetime as dt
    from dataclasses import replace

    from sealcheck.core.records.history import Trigger
    from sealcheck.gui.views.auditview import audit_options
    from sealcheck.gui.views.mainwindow import MainWindow

    assert isinstance(win, MainWindow)
    win.sources.setCurrentRow(0)
    src = win.current_source()
    assert src is not None
    page = win.audit_view
    # The targets a source sets on its Audit tab (Edit source), shown on the page.
    page.set_source(audit_options(replace(src, target_rto_s=900.0, target_rpo_h=26.0)))
    win.tabs.setCurrentWidget(page)
    wait_until(app, lambda: not page.reading, 120)
    # On two local Dask workers (issue 15), when the dask extra is installed.
    with contextlib.suppress(ImportError):
        import distributed  # noqa: F401

        page.cluster.setText("local:2")
    page.audit_btn.click()
    wait_until(app, lambda: page.audit_job is None and page.last_summary is not None, 300)
    hist = win.results.history
    assert hist is not None
    mine = [e for e in hist.entries(campaign=page.last_summary["id"])]  # type: ignore[index]
    now = dt.datetime.now(dt.UTC)
    third = max(1, len(mine) // 3)
    for days, part in ((40, mine[:third]), (15, mine[third : 2 * third]), (4, mine[2 * third :])):
        for e in part:
            hist.record(e.result(), when=now - dt.timedelta(days=days), trigger=Trigger.AUDIT)
    # Today's campaign again, so the newest record of each version is today's.
    wait_until(app, lambda: not page.reading, 120)
    page.audit_btn.click()
    wait_until(app, lambda: page.audit_job is None and not page.reading, 300)
    page.table.resizeColumnsToContents()
    grab(win, out / "audit.png")


def rotation_shots(app: object, win: object, work: Path, out: Path) -> None:
    from sealcheck.gui.views.mainwindow import MainWindow

    assert isinstance(win, MainWindow)
    new = work / "new-key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(new), "3072"], check=True, capture_output=True)
    wiz = win.rotate_keys_dialog()
    wiz.resize(1180, 720)
    wiz.move(win.x() + 90, win.y() + 70)
    wait_until(app, wiz.isVisible)
    wiz.scope_page.all.setChecked(True)
    grab(wiz, out / "rotation-1-scope.png")
    wiz.next()
    wait_until(app, wiz.old_page.isComplete)
    grab(wiz, out / "rotation-2-old-keys.png")
    wiz.next()
    wiz.new_page.spec.setText(str(new))
    wiz.new_page.check.click()
    wait_until(app, wiz.new_page.isComplete)
    grab(wiz, out / "rotation-3-new-key.png")
    wiz.next()
    wait_until(app, wiz.plan_page.isComplete, 120)
    wiz.plan_page.table.resizeColumnsToContents()
    grab(wiz, out / "rotation-4-plan.png")
    wiz.workers = 1  # one version at a time, so Pause lands mid-run
    wiz.next()
    run = wiz.run_page
    wait_until(app, lambda: run.bar.value() >= 1 or run.result is not None, 120)
    if run.result is None:
        run.pause.click()
        wait_until(app, lambda: run.paused or run.result is not None, 120)
        grab(wiz, out / "rotation-5-run-paused.png")
        if run.paused:
            run.resume.click()
    wait_until(app, run.isComplete, 120)
    wiz.next()
    grab(wiz, out / "rotation-6-result.png")
    wiz.accept()


def restore_test_shot(app: object, win: object, out: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QSplitter

    from sealcheck.core.errors import SealcheckError
    from sealcheck.core.restoretest.engines.mariadb import find_tools
    from sealcheck.gui.jobs.queue import JobState
    from sealcheck.gui.jobs.spec import RestoreTestSpec
    from sealcheck.gui.views.mainwindow import MainWindow

    assert isinstance(win, MainWindow)
    try:
        find_tools(need_server=True)
    except SealcheckError as exc:
        print(f"skipped restore-test.png: {exc.message()}")
        return
    key = "securecircle/1567744961188141183.sql.gz"
    for oldest_first in (0, 1):
        win.browser.select_set(key)
        vm = win.browser.versions
        rows = [r for r in range(vm.rowCount()) if vm.verifiable(r)]
        win.browser.versions_view.selectRow(list(reversed(rows))[oldest_first])
        (rec,) = win.restore_test_selected(RestoreTestSpec())
        wait_until(app, lambda rec=rec: rec.state not in (JobState.QUEUED, JobState.RUNNING), 180)
        if rec.state is not JobState.DONE:
            raise RuntimeError(f"the restore test failed: {rec.message}")
    splits = win.browser.findChildren(QSplitter)
    sizes = {id(s): s.sizes() for s in splits}
    for s in splits:
        s.setSizes([180, 620] if s.orientation() == Qt.Orientation.Vertical else [430, 900])
    win.browser.details.verticalScrollBar().setValue(0)
    grab(win, out / "restore-test.png")
    for s in splits:
        s.setSizes(sizes[id(s)])


if __name__ == "__main__":
    sys.exit(main())

"""``sealcheck demo`` ended by SIGTERM (a logout, ``timeout``) or SIGINT (Ctrl-C) cleans
up as a normal close does: its temp folder is gone and no gpg-agent it started remains.

The demo's own processes are found by its temp folder's path in their command line or
working directory (gpg-agent runs with ``--homedir <demo folder>/gnupg``), never by
looking at every gpg-agent on the machine.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

UP = "Demo window open"


def _processes_of(folder: Path) -> dict[int, str]:
    """pid -> command line of every process whose command line or cwd names ``folder``."""
    mark = str(folder)
    found: dict[int, str] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        try:
            cwd = os.readlink(p / "cwd")
        except OSError:
            cwd = ""
        if mark in cmd or cwd.startswith(mark):
            found[int(p.name)] = cmd
    return found


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short TMPDIR: gpg-agent's socket path in the demo's key home must stay under
    the 108 bytes of a Unix socket name (pytest's tmp_path can be longer)."""
    path = Path(tempfile.mkdtemp(prefix="scsig-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _lines(stream, out: queue.Queue[str]) -> None:
    for line in stream:
        out.put(line)
    out.put("")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_demo_ended_by_a_signal_leaves_nothing(short_tmp: Path, sig: signal.Signals) -> None:
    tmp = short_tmp  # the demo's folder is made here, so it is known to be its own
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TMPDIR=str(tmp))
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealcheck.core.cli", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # the signal goes to the demo only, as `kill PID` sends it
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while not any(UP in s for s in seen):
            left = deadline - time.monotonic()
            assert left > 0 and proc.poll() is None, "".join(seen)
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            assert line, "the demo ended before its window opened:\n" + "".join(seen)
            seen.append(line)
        (work,) = list(tmp.glob("sealcheck-demo-*"))
        ours = _processes_of(work)
        assert any("gpg-agent" in c for c in ours.values()), ours  # what must not remain

        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen)
    while (line := lines.get(timeout=10)) != "":
        out += line
    assert code == 128 + sig, out
    assert "Traceback" not in out, out
    assert not work.exists(), out
    deadline = time.monotonic() + 10  # an agent told to stop may take a moment to exit
    while (left := _processes_of(work)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == {}, left
    for pid in ours:
        assert not Path(f"/proc/{pid}").exists() or _gone_or_zombie(pid), ours[pid]


def _gone_or_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"

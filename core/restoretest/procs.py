"""Child processes, the state folder, orphans and the one-test-per-server lock.

Every server and set-up step runs in its own process group (``start_new_session``)
so that one ``killpg`` takes it and any helper it forked, and a Ctrl-C in the
terminal never reaches it half-way. Before a server starts, a record (its folder,
then its process group) goes into the state folder; a run that dies without
cleaning up leaves the record, and the next run for that engine kills the group and
wipes the folder (reliability.md E4).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import Cancelled, SaveFailed
from ..plumbing.atomic import AtomicWriter, pid_alive
from ..plumbing.progress import CancelToken
from .errors import InstanceFailed

DEFAULT_OS_USER = "sealcheck-db"


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int


def current_user() -> OsUser:
    pw = pwd.getpwuid(os.geteuid())
    return OsUser(pw.pw_name, pw.pw_uid, pw.pw_gid)


def server_user() -> OsUser:
    """Who the throwaway server runs as: as root, an unprivileged system user (so a
    hostile dump's server-side writes cannot reach root's files); otherwise ourselves."""
    if os.geteuid() != 0:
        return current_user()
    name = os.environ.get("SEALCHECK_DB_OS_USER") or DEFAULT_OS_USER
    with contextlib.suppress(KeyError):
        pw = pwd.getpwnam(name)
        return OsUser(pw.pw_name, pw.pw_uid, pw.pw_gid)
    useradd = shutil.which("useradd") or shutil.which("useradd", path="/usr/sbin:/sbin")
    if useradd:
        subprocess.run(
            [
                useradd,
                "--system",
                "--no-create-home",
                "--user-group",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "Sealcheck restore-test servers",
                name,
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
        with contextlib.suppress(KeyError):
            pw = pwd.getpwnam(name)
            return OsUser(pw.pw_name, pw.pw_uid, pw.pw_gid)
    pw = pwd.getpwnam("nobody")
    return OsUser(pw.pw_name, pw.pw_uid, pw.pw_gid)


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: nothing of ours (AWS keys, PG*, MYSQL_*) reaches a child."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    env.update(extra)
    return env


def _as_user(user: OsUser | None) -> dict[str, object]:
    if user is None or os.geteuid() != 0 or user.uid == 0:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}


def spawn(
    argv: Sequence[str],
    *,
    user: OsUser | None,
    cwd: Path,
    env: dict[str, str],
    log: Path | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = None,
    stderr: int | None = None,
) -> subprocess.Popen[bytes]:
    out_fd = None
    if log is not None:
        out_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if user is not None and os.geteuid() == 0:
            os.fchown(out_fd, user.uid, user.gid)
    try:
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            list(argv),
            stdin=stdin,
            stdout=out_fd if out_fd is not None else stdout,
            stderr=subprocess.STDOUT if out_fd is not None else stderr,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
            **_as_user(user),
        )
    finally:
        if out_fd is not None:
            os.close(out_fd)


def kill_group(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGKILL) -> None:
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def kill_processes_in(root: Path) -> list[int]:
    """SIGKILL every process whose working folder is ``root`` or inside it.

    A process group is not enough: PostgreSQL's backends ``setsid()`` into groups of their
    own and outlive a killed postmaster, and one busy in a loop (a hostile dump's ``DO``)
    never notices; every server process works inside its instance folder (its datadir),
    which is how they are found, also once the folder has been deleted.
    """
    prefix = str(root).rstrip("/")
    try:  # the server's user owns the folder (as root: not root, so never an admin's shell)
        owner: int | None = os.stat(root).st_uid
    except OSError:
        owner = None  # already wiped: nobody has business working in it
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd").removesuffix(" (deleted)")
            uid = os.stat(f"/proc/{entry}").st_uid
        except OSError:
            continue
        if owner is not None and uid != owner:
            continue
        if cwd == prefix or cwd.startswith(prefix + "/"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry), signal.SIGKILL)
                killed.append(int(entry))
    return killed


def run_step(
    argv: Sequence[str],
    *,
    user: OsUser | None,
    cwd: Path,
    env: dict[str, str],
    log: Path,
    what: str,
    timeout: float,
    cancel: CancelToken,
    on_spawn: Callable[[int], None] | None = None,
) -> None:
    """A set-up step (initdb, mariadb-install-db) that cancel and timeouts really stop."""
    proc = spawn(argv, user=user, cwd=cwd, env=env, log=log)
    if on_spawn is not None:
        on_spawn(proc.pid)  # recorded: a crash now leaves an orphan the next run can stop
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            cancel.check()  # also the wall-clock limit (a LimitToken)
            if time.monotonic() > deadline:
                raise InstanceFailed(f"{what} did not finish within {timeout:.0f} s")
            time.sleep(0.05)
    finally:
        # Interrupted steps keep writing while their folder is deleted: take the group.
        kill_group(proc)
    if proc.returncode != 0:
        raise InstanceFailed(f"{what} failed (exit {proc.returncode}): {tail(log)}")


def tail(path: Path, n: int = 1500) -> str:
    try:
        text = path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"
    return " | ".join(line for line in text.splitlines() if line.strip())[-n:]


INSTANCE_PREFIX = "scrt-"  # every folder private_dir makes starts with this


def _base() -> Path:
    # Not $TMPDIR: it may be long (sockets) or shared with the server user.
    return Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())  # noqa: S108


def is_instance_dir(path: str) -> bool:
    """Whether ``path`` names a folder ``private_dir`` makes (a record read back from the
    state folder is checked with this before anything it names is killed or wiped)."""
    p = Path(path)
    return (
        p.is_absolute()
        and p.parent == _base()
        and p.name.startswith(INSTANCE_PREFIX)
        and ".." not in p.parts
    )


def private_dir(prefix: str, owner: OsUser | None = None) -> Path:
    """A 0700 folder under /tmp with a short path (unix socket paths are ~107 bytes)."""
    assert prefix.startswith(INSTANCE_PREFIX)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=_base()))
    os.chmod(path, 0o700)
    if owner is not None and os.geteuid() == 0 and owner.uid != 0:
        os.chown(path, owner.uid, owner.gid)
    return path


def make_dirs(root: Path, names: Sequence[str], owner: OsUser | None) -> None:
    for name in names:
        p = root / name
        p.mkdir(mode=0o700)
        if owner is not None and os.geteuid() == 0 and owner.uid != 0:
            os.chown(p, owner.uid, owner.gid)


def disk_usage(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total


# --- state folder: records and locks ----------------------------------------------------


def default_state_dir() -> Path:
    if env := os.environ.get("SEALCHECK_STATE_DIR"):
        return Path(env) / "restoretest"
    from platformdirs import user_state_path

    return user_state_path("sealcheck") / "restoretest"


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True, mode=0o700)

    @contextlib.contextmanager
    def lock(self, name: str, cancel: CancelToken) -> Iterator[bool]:
        """One restore test per server at a time; later ones wait (queue) here.
        Yields whether it had to wait."""
        fd = os.open(self.path / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        waited = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = True
                    if cancel.cancelled:
                        raise Cancelled() from None
                    time.sleep(0.2)
            yield waited
        finally:
            os.close(fd)  # releases the lock; a crashed process releases it too

    def record(self, engine: str, root: Path) -> Path:
        rec = self.path / f"{engine}-{root.name}.json"
        self._write(rec, {"engine": engine, "root": str(root), "owner": os.getpid(), "pgid": None})
        return rec

    def set_pgid(self, rec: Path, pgid: int) -> None:
        data = json.loads(rec.read_text())
        data["pgid"] = pgid
        self._write(rec, data)

    def _write(self, rec: Path, data: dict[str, object]) -> None:
        # Atomic and durable: a crash right after must leave a record that names the
        # server to sweep, never a torn one (a torn record is deleted unread).
        with AtomicWriter(rec, overwrite=True, error=SaveFailed) as f:
            f.write(json.dumps(data).encode())

    def clean_orphans(self, engine: str) -> list[str]:
        """Kill servers and wipe folders left by runs that died (call with the lock held)."""
        cleaned = []
        for rec in sorted(self.path.glob(f"{engine}-*.json")):
            try:
                data = json.loads(rec.read_text())
            except (OSError, ValueError):
                rec.unlink(missing_ok=True)
                continue
            owner = int(data.get("owner") or 0)
            if owner and owner != os.getpid() and pid_alive(owner):
                continue  # its run is still going (it holds another lock, e.g. --server)
            root = str(data.get("root") or "")
            pgid = data.get("pgid")
            if isinstance(pgid, int) and pid_alive(pgid) and root and root in _cmdline(pgid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                cleaned.append(f"stopped orphan server (process group {pgid})")
            if not is_instance_dir(root):
                rec.unlink(missing_ok=True)  # not a folder we make: touch nothing it names
                continue
            if rest := kill_processes_in(Path(root)):
                cleaned.append(f"stopped {len(rest)} orphan server process(es) in {root}")
            if Path(root).is_dir():
                shutil.rmtree(root, ignore_errors=True)
                if Path(root).exists():  # its record stays: the next run tries again
                    cleaned.append(f"could not wipe orphan folder {root}")
                    continue
                cleaned.append(f"wiped orphan folder {root}")
            rec.unlink(missing_ok=True)
        return cleaned


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""

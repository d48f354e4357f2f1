"""``--server DSN``: an existing server on this machine, reached through its socket.

``mysql://USER@localhost/?socket=/run/mysqld/mysqld.sock`` (also ``mariadb://``) and
``postgresql://USER@/?host=/var/run/postgresql&port=5432``. Local sockets only: the
restore test never sends a backup over the network. A password, if the account needs
one, comes from ``--server-password-file`` (never the command line).
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import UsageError


@dataclass(frozen=True)
class Dsn:
    socket: Path  # MySQL: the socket file; PostgreSQL: the socket folder
    user: str
    password: str | None
    port: int


def parse_dsn(text: str, engine: str, password_file: Path | None) -> Dsn:
    u = urlsplit(text)
    q = parse_qs(u.query)
    if u.password:
        raise UsageError("put the --server password in --server-password-file, not in the DSN")
    user = unquote(u.username or "") or getpass.getuser()
    if engine == "postgres":
        if u.scheme not in ("postgres", "postgresql"):
            raise UsageError(f"--server {text}: expected postgresql://USER@/?host=/socket/dir")
        host = (q.get("host") or [""])[0] or (u.hostname or "")
        if not host:
            host = "/var/run/postgresql"
        if not host.startswith("/"):
            raise UsageError("--server: only a local socket folder (host=/path) is accepted")
        sock = Path(host)
        port = int((q.get("port") or [str(u.port or 5432)])[0])
    else:
        if u.scheme not in ("mysql", "mariadb"):
            raise UsageError(f"--server {text}: expected mysql://USER@localhost/?socket=/path")
        s = (q.get("socket") or [""])[0] or "/run/mysqld/mysqld.sock"
        if u.hostname not in (None, "", "localhost"):
            raise UsageError("--server: only a local socket is accepted (host localhost)")
        sock = Path(s)
        port = 0
    pw = None
    if password_file is not None:
        try:
            pw = password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read {password_file}: {exc.strerror}") from None
    return Dsn(sock, user, pw, port)

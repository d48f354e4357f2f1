"""Scan a plain pg_dump script as ``psql`` reads it.

psql ends a statement at ``;`` outside quotes (``'…'``, ``E'…'``, ``"…"``, ``$tag$…$tag$``)
and comments; a backslash outside quotes starts a meta-command that runs to the end of
the line; after ``COPY … FROM stdin;`` the following lines are data up to a line ``\\.``.
Rows are counted from COPY data lines and INSERT tuples. The dump's own ``\\restrict``/
``\\unrestrict`` lines (pg_dump 15.14+) are blanked: the loader's own ``\\restrict`` with
a random key is already in effect and stays in effect until psql exits.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..confine import cap_rewritten
from .common import MARGIN, ScannerBase, StatementRef, Tokens

_LEAD = re.compile(rb"(?:\s++|--[^\n]*+|/\*(?:[^*]++|\*(?!/))*+\*/)*+")
_PLAIN = rb"[^'\"$/\-;\\eE]*+"
_BODY = re.compile(
    _PLAIN + rb"(?:(?:[eE]'[^'\\]*+(?:(?:\\.|'')[^'\\]*+)*+'"
    rb"|[eE](?!')"
    rb"|'[^']*+(?:''[^']*+)*+'"
    rb"|\"[^\"]*+(?:\"\"[^\"]*+)*+\""
    rb"|\$(?P<tag>[A-Za-z_\x80-\xff][\w\x80-\xff]*|)\$.*?\$(?P=tag)\$"
    rb"|\$(?![A-Za-z_\x80-\xff$])"
    rb"|--[^\n]*+"
    rb"|/\*(?:[^*]++|\*(?!/))*+\*/"
    rb"|/(?!\*)|-(?!-))" + _PLAIN + rb")*+",
    re.S,
)
_META = re.compile(rb"\\[^\n]*(?:\n|\Z)")
_OWN_RESTRICT = re.compile(rb"\\(?:un)?restrict[ \t]+[A-Za-z0-9]+[ \t]*\r?(?:\n|\Z)")
_STR = rb"[eE]'[^'\\]*+(?:(?:\\.|'')[^'\\]*+)*+'|'[^']*+(?:''[^']*+)*+'"
_STRINGS = re.compile(_STR, re.S)
_ROWS = re.compile(_STR + rb"|(\)\s*,\s*\()", re.S)

_ID = r'(?:"(?:[^"]|"")+"|[A-Za-z_\x80-\uffff][\w$\x80-\uffff]*)'
_QN = rf"({_ID})(?:\s*\.\s*({_ID}))?"
_I = re.I | re.S

# How the server tokenizes a statement (for reports): literals, quoted identifiers,
# dollar-quoted text (a function body: its code is read too, so ``COPY t TO $q$/f$q$``
# reads ``COPY t TO '' /f ''``) and comments.
_TOKENS = Tokens(
    literals=_STR,
    quote=b'"',
    body=rb"\$(?P<tag>[A-Za-z_\x80-\xff][\w\x80-\xff]*|)\$(?P<body>.*?)\$(?P=tag)\$",
    comment=rb"/\*(?:[^*]++|\*(?!/))*+\*/|--[^\n]*+",
)
code_text = _TOKENS.code_text


_NOT_APPLIED = "(not applied, as pg_restore --no-owner --no-privileges)"
# What pg_restore --no-owner --no-privileges leaves out (--server: the confined role owns
# what it makes and grants nothing).
_OWNERSHIP = re.compile(
    r"^(?:ALTER\b.*\bOWNER\s+TO\b|GRANT\b|REVOKE\b|ALTER\s+DEFAULT\s+PRIVILEGES\b"
    r"|(?:SET|RESET)\s+(?:SESSION\s+AUTHORIZATION|ROLE)\b)",
    _I,
)
_COPY = re.compile(rf"COPY\s+{_QN}\s*(?:\([^)]*\)\s*)?FROM\s+stdin\b", _I)
_INSERT = re.compile(rf"INSERT\s+INTO\s+{_QN}", _I)
_VALUES = re.compile(rb"\bVALUES\b|\bSELECT\b", re.I)
_CREATE_TABLE = re.compile(
    rf"CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:(TEMP|TEMPORARY)\s+|UNLOGGED\s+)?TABLE\s+"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?{_QN}",
    _I,
)
_CREATE_OBJ = re.compile(
    rf"CREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?(?:MATERIALIZED\s+)?"
    rf"(VIEW|TRIGGER|FUNCTION|PROCEDURE)\s+{_QN}(?:.*?\bON\s+{_QN})?",
    _I,
)
_CREATE_SCHEMA = re.compile(rf"CREATE\s+SCHEMA\s+(?:IF\s+NOT\s+EXISTS\s+)?({_ID})", _I)
_CREATE_DB = re.compile(r"CREATE\s+DATABASE\b", _I)
# pg_dump -C's statements about the dumped database itself (and --clean's DROP).
_DB_STATEMENT = re.compile(
    rf"(?:(?P<verb>CREATE|ALTER|DROP)\s+DATABASE\s+(?:IF\s+EXISTS\s+)?(?P<a>{_ID})"
    rf"|COMMENT\s+ON\s+DATABASE\s+(?P<b>{_ID})"
    rf"|(?:GRANT|REVOKE)\b.*?\bON\s+DATABASE\s+(?P<c>{_ID}))",
    _I,
)
# \connect NAME, and pg_dump 15+'s \connect -reuse-previous=on "dbname='NAME'"
_CONNECT = re.compile(
    rb"\\c(?:onnect)?[ \t]+(?:-reuse-previous=\S+[ \t]+)?"
    rb"(?:\"dbname='(?P<q>(?:[^'\\]|'')*)'\"|(?P<p>\"(?:[^\"]|\"\")+\"|[^\s\"]+))[ \t]*\r?(?:\n|\Z)"
)
_OWNER_ETC = re.compile(
    rf"\bOWNER\s+TO\s+({_ID})|\bAUTHORIZATION\s+({_ID})|\bFOR\s+(?:ROLE|USER)\s+({_ID})", _I
)
_GRANTEES = re.compile(rf"\b(?:TO|FROM)\s+((?:GROUP\s+)?{_ID}(?:\s*,\s*(?:GROUP\s+)?{_ID})*)", _I)
_GRANT_ROLE = re.compile(rf"GRANT\s+({_ID}(?:\s*,\s*{_ID})*)\s+TO\b", _I)
_NOT_ROLES = {"public", "current_user", "session_user", "current_role", "group"}

HOSTILE_PG: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("psql meta-command", re.compile(r"^\\")),
    ("program execution (COPY … PROGRAM)", re.compile(r"\bPROGRAM\b", _I)),
    (
        "server file access",
        re.compile(
            r"^COPY\b.*\b(?:FROM|TO)\s+'|\blo_(?:import|export)\s*\("
            r"|\bpg_(?:read_file|read_binary_file|ls_dir|stat_file|file_write)\s*\(",
            _I,
        ),
    ),
    ("server settings (ALTER SYSTEM)", re.compile(r"^ALTER\s+SYSTEM\b", _I)),
    (
        "roles and sessions",
        re.compile(
            r"^(?:CREATE|ALTER|DROP)\s+(?:ROLE|USER|GROUP)\b"
            r"|^(?:SET|RESET)\s+(?:SESSION\s+AUTHORIZATION|ROLE)\b",
            _I,
        ),
    ),
    (
        "untrusted code (languages, extensions, C functions)",
        re.compile(
            r"^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TRUSTED\s+)?(?:PROCEDURAL\s+)?LANGUAGE\b"
            r"|\bLANGUAGE\s+(?:plpython3?u|plperlu|pltclu|c)\b|^CREATE\s+EXTENSION\b"
            r"|^CREATE\s+(?:FOREIGN\s+DATA\s+WRAPPER|SERVER)\b",
            _I,
        ),
    ),
    ("event trigger", re.compile(r"^CREATE\s+EVENT\s+TRIGGER\b", _I)),
    (
        "other databases and tablespaces",
        re.compile(r"^(?:CREATE|ALTER|DROP)\s+(?:DATABASE|TABLESPACE)\b", _I),
    ),
    (
        "server control",
        re.compile(
            r"\bpg_(?:terminate_backend|cancel_backend|reload_conf|rotate_logfile|promote"
            r"|switch_wal|create_restore_point|log_backend_memory_contexts)\s*\("
            r"|^(?:CHECKPOINT|LOAD)\b",
            _I,
        ),
    ),
    (
        "network connection (subscription, dblink)",
        re.compile(r"^(?:CREATE|ALTER)\s+SUBSCRIPTION\b|\bdblink\w*\s*\(", _I),
    ),
    ("workload (pg_sleep)", re.compile(r"\bpg_sleep\w*\s*\(", _I)),
    # pg_dump never runs code at load time; a dump that does may never stop (E3).
    ("workload (anonymous code block DO)", re.compile(r"^DO\b", _I)),
    ("workload (CALL of a procedure)", re.compile(r"^CALL\b", _I)),
    (
        "workload (recursive query or generate_series)",
        re.compile(
            r"^(?:WITH|(?:SELECT|INSERT|VALUES|TABLE)\b.*\bWITH)\s+RECURSIVE\b"
            r"|^(?:WITH|SELECT|INSERT)\b.*\bgenerate_series\s*\(",
            _I,
        ),
    ),
)


def _creates_next(buf: bytes, pos: int, name: str) -> bool:
    """Whether the next statement after ``pos`` is CREATE DATABASE ``name``."""
    nxt = buf[_end(_LEAD.match(buf, pos)) :][:1024].decode("utf-8", "replace")
    m = _DB_STATEMENT.match(nxt)
    return bool(m and (m.group("verb") or "").upper() == "CREATE" and unquote(m.group("a")) == name)


def _end(m: re.Match[bytes] | None) -> int:
    assert m is not None  # the pattern matches the empty string
    return m.end()


def unquote(ident: str) -> str:
    if ident[:1] == '"':
        return ident[1:-1].replace('""', '"')
    return ident.lower()


class PgScanner(ScannerBase):
    dialect = "postgresql"

    def __init__(self) -> None:
        super().__init__()
        self.summary.schemas.append("public")
        self._copy: tuple[str, str] | None = None  # inside COPY data for this table
        self._copy_line = 0
        self._copy_head = False  # the rest of the COPY statement's line is still ahead
        self.roles: set[str] = set()
        # Roles named by a statement must exist before it runs (issue 5: managed
        # services' roles are created as NOLOGIN); the target may also refuse.
        self.on_roles: Callable[[set[str]], None] | None = None
        self.on_refuse: Callable[[str, StatementRef], None] | None = None
        # --server: ownership and privilege statements are not applied (see _OWNERSHIP).
        self.skip_ownership = False
        # pg_dump -C: the database the dump creates and connects to. It is restored into
        # the test's own database: its CREATE/ALTER/DROP DATABASE and \connect are
        # blanked; a second database (pg_dumpall) is refused.
        self.dump_db: str | None = None

    def _scan(self, buf: bytes, final: bool) -> int:
        pos = 0
        n = len(buf)
        limit = n if final else n - MARGIN
        while True:
            if self._copy is not None:
                pos = self._copy_data(buf, pos, final)
                if self._copy is not None:
                    return pos
            start = _end(_LEAD.match(buf, pos))
            if start >= n:
                return n if final or start == pos else pos
            if buf[start] == 0x5C:  # backslash: a meta-command line
                mm = _META.match(buf, start)
                assert mm is not None
                if not mm.group(0).endswith(b"\n") and not final:
                    return pos
                self._meta(buf, start, mm.end())
                pos = mm.end()
                continue
            end = _end(_BODY.match(buf, start))
            if end >= n or buf[end] != 0x3B:  # ';'
                if end < n and buf[end] == 0x5C and not (end > limit and not final):
                    # A meta-command inside a statement: psql runs it there too.
                    mm = _META.match(buf, end)
                    assert mm is not None
                    ref = self.record(buf, start, mm.end())
                    self.hostile(ref.line, "psql meta-command", buf[end : mm.end()])
                    pos = mm.end()
                    continue
                return pos
            stop = end + 1
            if stop > limit and not final:
                return pos
            self._statement(buf, start, end, stop)
            pos = stop

    def finish(self) -> list[bytes]:
        copying = self._copy
        out = super().finish()
        cap_rewritten(self.summary.rewritten, _NOT_APPLIED, "ownership/privilege statements")
        if copying is not None and self._copy is not None:
            self.summary.unterminated = StatementRef(
                self._copy_line,
                self.summary.lines,
                f"COPY {copying[0]}.{copying[1]} … FROM stdin: the data stops before its "
                "end-of-data line \\.",
            )
        return out

    def _meta(self, buf: bytes, start: int, end: int) -> None:
        ref = self.record(buf, start, end)
        if _OWN_RESTRICT.fullmatch(buf, start, end):
            self.blank(buf, start, end, "the dump's own \\restrict/\\unrestrict line")
            return
        if c := _CONNECT.fullmatch(buf, start, end):
            raw = c.group("q") if c.group("q") is not None else c.group("p")
            name = raw.decode("utf-8", "replace")
            name = name.replace("''", "'") if c.group("q") is not None else unquote(name)
            if self._same_database(name, "\\connect", ref, establish=False):
                self.blank(buf, start, end, f"\\connect {name} (restored into the test database)")
                return
        self.hostile(ref.line, "psql meta-command", buf[start:end])

    def _copy_data(self, buf: bytes, pos: int, final: bool) -> int:
        assert self._copy is not None
        t = self.table(self._copy, self._copy_line)
        if self._copy_head:
            nl = buf.find(b"\n", pos)
            if nl == -1:
                return len(buf) if final else pos
            pos, self._copy_head = nl + 1, False
        if buf.startswith(b"\\.\n", pos) or (final and buf[pos:].rstrip(b"\r\n") == b"\\."):
            self._copy = None
            return min(pos + 3, len(buf))
        i = buf.find(b"\n\\.\n", pos)
        if i == -1 and final and buf.endswith(b"\n\\."):
            i = len(buf) - 3
        if i == -1:
            if final:
                t.rows += buf.count(b"\n", pos)
                return pos  # cut inside COPY data: finish() reports it
            keep = max(pos, len(buf) - 4)
            keep = buf.rfind(b"\n", pos, keep) + 1 or pos
            t.rows += buf.count(b"\n", pos, keep)
            return keep
        t.rows += buf.count(b"\n", pos, i + 1)
        self._copy = None
        return min(i + 4, len(buf))

    def _statement(self, buf: bytes, start: int, end: int, stop: int) -> None:
        ref = self.record(buf, start, stop)
        raw = buf[start:end]
        head = raw[:4096].decode("utf-8", errors="replace")
        word = head[:12].upper()
        if word.startswith("COPY") and (m := _COPY.match(head)):
            self._copy = self._key(m)
            self._copy_line = ref.line
            self._copy_head = True  # the data starts on the next line
            self.table(self._copy, ref.line)
            return
        if word.startswith("INSERT"):
            self._insert(raw, head, ref)
            return
        if word.startswith(("CREATE", "ALTER", "DROP", "COMMENT", "GRANT", "REVOKE")) and (
            d := _DB_STATEMENT.match(head)
        ):
            name = unquote(d.group("a") or d.group("b") or d.group("c"))
            verb = d.group("verb")
            what = f"{verb.upper()} DATABASE" if verb else f"{word.split()[0]} … ON DATABASE"
            # CREATE names the dump's database; --clean's DROP does when that CREATE
            # follows at once (pg_dump -C --clean writes them together).
            establish = bool(verb) and (
                verb.upper() == "CREATE"
                or (verb.upper() == "DROP" and _creates_next(buf, stop, name))
            )
            if self._same_database(name, what, ref, establish=establish):
                self.blank(buf, start, stop, f"{what} {name} (restored into the test database)")
                return
        code = code_text(raw)
        if self.skip_ownership and _OWNERSHIP.match(code):
            self.blank(
                buf, start, stop,
                f"{ref.head} {_NOT_APPLIED}",
            )  # fmt: skip
            return
        self._check_hostile(ref, raw, code)
        self._objects(head, word, ref)
        if self.on_roles is not None:  # names as written (quoted ones keep their case)
            self._roles(_STRINGS.sub(b"''", raw[: 1 << 16]).decode("utf-8", "replace"))

    def _same_database(self, name: str, what: str, ref: StatementRef, *, establish: bool) -> bool:
        """Whether a statement about database ``name`` is pg_dump -C's own (blank it);
        any other database refuses the dump (False when nothing refuses: offline scan)."""
        if self.dump_db is None and establish:
            self.dump_db = name
        if name == self.dump_db:
            return True
        if self.on_refuse is not None:
            why = "a second database (pg_dumpall?)" if self.dump_db else "another database"
            self.on_refuse(f"{what} {name}: {why}", ref)
        return False

    def _check_hostile(self, ref: StatementRef, raw: bytes, code: str | None = None) -> None:
        text = code if code is not None else code_text(raw)
        for kind, rx in HOSTILE_PG:
            if rx.search(text):
                self.hostile(ref.line, kind, raw)

    def _key(self, m: re.Match[str], g: int = 1) -> tuple[str, str]:
        a, b = m.group(g), m.group(g + 1)
        return (unquote(a), unquote(b)) if b else ("public", unquote(a))

    def _insert(self, raw: bytes, head: str, ref: StatementRef) -> None:
        m = _INSERT.match(head)
        if not m:
            return
        t = self.table(self._key(m), ref.line)
        v = _VALUES.search(raw, 0, 1 << 16)
        if v is None or v.group(0).upper() == b"SELECT":
            t.countable = False
            # A query at load time (pg_dump's INSERTs are VALUES only).
            self._check_hostile(ref, raw)
        elif raw.find(b"(", v.end()) != -1:
            found = _ROWS.findall(raw, v.end())
            t.rows += 1 + len(found) - found.count(b"")

    def _objects(self, head: str, word: str, ref: StatementRef) -> None:
        s = self.summary
        if not word.startswith(("CREATE", "ALTER", "DROP")):
            return
        if m := _CREATE_TABLE.match(head):
            if not m.group(1):
                key = self._key(m, 2)
                s.tables.pop(key, None)
                t = self.table(key, ref.line)
                if re.search(r"\bAS\s+(?:SELECT|TABLE|VALUES|EXECUTE)\b", head[m.end() :], re.I):
                    t.countable = False
        elif m := _CREATE_OBJ.match(head):
            kind = m.group(1).upper()
            key = self._key(m, 2)
            if kind == "TRIGGER" and m.group(4):
                # Trigger names are per table: keep the table's schema.
                key = (self._key(m, 4)[0], key[1])
                s.triggers.add(key)
            elif kind == "VIEW":
                s.views.add(key)
            elif kind in ("FUNCTION", "PROCEDURE"):
                s.routines.add(key)
        elif m := _CREATE_SCHEMA.match(head):
            name = unquote(m.group(1))
            if name not in s.schemas:
                s.schemas.append(name)
        elif _CREATE_DB.match(head) and self.on_refuse is not None:
            self.on_refuse("CREATE DATABASE", ref)

    def _roles(self, text: str) -> None:
        if self.on_roles is None:
            return
        found: set[str] = set()
        up = text[:8192]
        for m in _OWNER_ETC.finditer(up):
            found.add(unquote(next(g for g in m.groups() if g)))
        if re.match(r"(?:GRANT|REVOKE)\b", up, re.I):
            for m in _GRANTEES.finditer(up):
                for part in m.group(1).split(","):
                    found.add(unquote(part.strip().split()[-1]))
            if (g := _GRANT_ROLE.match(up)) and not re.search(r"\bON\b", up, re.I):
                for part in g.group(1).split(","):
                    found.add(unquote(part.strip()))
        new = {r for r in found if r.lower() not in _NOT_ROLES and not r.startswith("pg_")}
        new -= self.roles
        if new:
            self.roles |= new
            self.on_roles(new)

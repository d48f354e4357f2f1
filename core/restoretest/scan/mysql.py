"""Scan a MySQL/MariaDB dump as the ``mariadb`` client reads it (``--binary-mode``).

The client ends a statement at the current delimiter outside quotes and comments;
``DELIMITER x`` (the one client command ``--binary-mode`` keeps) changes it; ``#``
and ``-- `` comments run to the end of the line; ``/*! … */`` and ``/*M! … */`` are
code, not comments. Sequel Pro dumps use every one of these.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from ..confine import SYSTEM_SCHEMAS, cap_rewritten
from .common import MARGIN, ScannerBase, StatementRef, Tokens

_LEAD = re.compile(
    rb"(?:\s++|\#[^\n]*+|--(?=[ \t\r\n])[^\n]*+|/\*(?![!]|M!)(?:[^*]++|\*(?!/))*+\*/"
    # MariaDB's sandbox line, a comment for every server: the client (--sandbox) is
    # already in sandbox mode, so it changes nothing.
    rb"|/\*M?!999999\\-[^*\n]*\*/)*+"
)
_SANDBOX_LINE = re.compile(rb"/\*M?!999999\\-[^*\n]*\*/")
_DELIMITER = re.compile(rb"(?i:delimiter)[ \t]+(\S+)[^\n]*(?:\n|\Z)")
# String literals with backslash escapes, as unrolled loops ("plain run, then one escape,
# then a plain run …"): the common case costs one regex step per literal.
_SINGLE = rb"'[^'\\]*+(?:\\.[^'\\]*+)*+'"
_DOUBLE = rb"\"[^\"\\]*+(?:\\.[^\"\\]*+)*+\""


# The same literals, stopping at a row separator inside them (see _insert_body).
_NO_SEP = rb"\)(?!\s*,\s*\()"
_SINGLE_NO_SEP = rb"'(?:[^'\\)]++|\\.|" + _NO_SEP + rb")*+'"
_DOUBLE_NO_SEP = rb"\"(?:[^\"\\)]++|\\.|" + _NO_SEP + rb")*+\""


def _statement_end(delim: bytes, single: bytes, double: bytes) -> re.Pattern[bytes]:
    """Everything up to the next ``delim`` outside literals, identifiers and comments."""
    d0 = re.escape(delim[:1])
    plain = rb"[^'\"`/#\-" + d0 + rb"]*+"
    not_delim = b"(?!" + re.escape(delim) + b")"
    return re.compile(
        plain + rb"(?:(?:" + single + rb"|" + double + rb"|`[^`]*+`"
        rb"|/\*(?![!]|M!)(?:[^*]++|\*(?!/))*+\*/"
        rb"|\#[^\n]*+"
        rb"|--(?=[ \t\r\n])[^\n]*+"
        rb"|"
        + not_delim
        + rb"(?:/(?!\*(?![!]|M!))|-(?!-[ \t\r\n])|"
        + d0
        + rb"))"
        + plain
        + rb")*+",
        re.S,
    )


@lru_cache(maxsize=16)
def _body(delim: bytes) -> re.Pattern[bytes]:
    return _statement_end(delim, _SINGLE, _DOUBLE)


@lru_cache(maxsize=16)
def _insert_body(delim: bytes) -> re.Pattern[bytes]:
    """The same statement end as ``_body``, for an INSERT whose string literals hold no
    row separator: then every separator in the statement is a real one and counting
    them needs no second pass over the literals. A literal that holds one stops the
    match at its quote; the exact (slower) count is used for that statement."""
    return _statement_end(delim, _SINGLE_NO_SEP, _DOUBLE_NO_SEP)


_SEPARATOR = re.compile(rb"\)\s*,\s*\(")
# A row separator with whitespace in it (dump tools write none: "),(").
_SPACED_SEPARATOR = re.compile(rb"\)\s+,|\),\s+\(")
# Where an INSERT's fast statement-end match stopped: a whole literal (one that holds a
# row separator) or the start of one the buffer cuts.
_LITERAL = re.compile(rb"'[^'\\]*+(?:\\.[^'\\]*+)*+'|\"[^\"\\]*+(?:\\.[^\"\\]*+)*+\"", re.S)
# One pass over an INSERT: string literals (group empty) and row separators.
_ROWS = re.compile(_SINGLE + b"|" + _DOUBLE + rb"|(\)\s*,\s*\()", re.S)


_ID = r"(?:`(?:[^`]|``)+`|\"(?:[^\"]|\"\")+\"|[\w$]+)"
_QN = rf"({_ID})(?:\s*\.\s*({_ID}))?"
_I = re.I | re.S
_CREATE_TABLE = re.compile(
    rf"CREATE\s+(?:OR\s+REPLACE\s+)?(TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_QN}", _I
)
_DROP_TABLE = re.compile(r"DROP\s+(?:TEMPORARY\s+)?TABLES?\s+(?:IF\s+EXISTS\s+)?(.*)", _I)
_INSERT = re.compile(
    rf"(?:INSERT|REPLACE)\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*"
    rf"(?:INTO\s+)?{_QN}",
    _I,
)
_ID_B = rb"(?:`(?:[^`]|``)+`|\"(?:[^\"]|\"\")+\"|[\w$]+)"
# Where the rows start: after the table name and the optional column list.
_VALUES = re.compile(
    rb"(?:INSERT|REPLACE)\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*(?:INTO\s+)?"
    + _ID_B
    + rb"(?:\s*\.\s*"
    + _ID_B
    + rb")?\s*(?:\((?:[^)`]|`[^`]*`)*\)\s*)?"
    rb"(VALUES?|SELECT|SET|WITH|\()",
    re.I,
)
_CREATE_DB = re.compile(rf"CREATE\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+NOT\s+EXISTS\s+)?({_ID})", _I)
_DROP_DB = re.compile(rf"DROP\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+EXISTS\s+)?({_ID})?", _I)
_USE = re.compile(rf"USE\s+({_ID})\s*$", _I)
_CREATE_OBJ = re.compile(
    rf"CREATE\b(?:(?!\bTABLE\b).)*?\b(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT)\s+"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?{_QN}",
    _I,
)
_DROP_OBJ = re.compile(
    rf"DROP\s+(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT)\s+(?:IF\s+EXISTS\s+)?{_QN}", _I
)
_TRUNCATE = re.compile(rf"(?:TRUNCATE\s+(?:TABLE\s+)?|DELETE\s+FROM\s+|UPDATE\s+){_QN}", _I)

# What a dump has no business doing (reliability.md E1–E3), on the statement's text
# with its string literals blanked.
HOSTILE_MYSQL: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("client command", re.compile(r"^(?:\\[!.TtPpe]|(?:system|source|tee|pager|edit)\b)", re.I)),
    ("file write (INTO OUTFILE/DUMPFILE)", re.compile(r"\bINTO\s+(?:OUTFILE|DUMPFILE)\b", _I)),
    (
        "file read (LOAD DATA/LOAD_FILE)",
        re.compile(r"\bLOAD\s+(?:DATA|XML)\b|\bLOAD_FILE\s*\(", _I),
    ),
    ("server settings (SET GLOBAL)", re.compile(r"\bSET\s+(?:GLOBAL|PERSIST)\b|@@GLOBAL\.", _I)),
    (
        "shared library (INSTALL/SONAME)",
        re.compile(r"\bINSTALL\s+(?:PLUGIN|SONAME)\b|\bSONAME\b", _I),
    ),
    (
        "accounts and privileges",
        re.compile(
            r"^(?:GRANT|REVOKE|CREATE\s+(?:USER|ROLE)|ALTER\s+USER|DROP\s+USER|RENAME\s+USER"
            r"|SET\s+PASSWORD)\b",
            _I,
        ),
    ),
    ("event (scheduler is off)", re.compile(r"^CREATE\b(?:(?!\bTABLE\b).)*?\bEVENT\b", _I)),
    (
        "files outside the datadir (DATA/INDEX DIRECTORY)",
        re.compile(r"\b(?:DATA|INDEX)\s+DIRECTORY\b", _I),
    ),
    (
        "server control",
        re.compile(
            r"^(?:SHUTDOWN|KILL|FLUSH|RESET|PURGE|CHANGE\s+MASTER|START\s+(?:SLAVE|REPLICA))\b", _I
        ),
    ),
    ("workload (SLEEP/BENCHMARK)", re.compile(r"\bSLEEP\s*\(|\bBENCHMARK\s*\(", _I)),
    # Dump tools never build statements at load time: what such a statement runs is
    # known only to the server (which runs it with the loading account's privileges).
    (
        "dynamic SQL (PREPARE/EXECUTE)",
        re.compile(r"^(?:PREPARE|EXECUTE)\b|\bEXECUTE\s+IMMEDIATE\b", _I),
    ),
    (
        "a system database",
        re.compile(
            r"^USE\s+(?:mysql|sys|information_schema|performance_schema)\b"
            r"|\b(?:mysql|sys|performance_schema)\s*\.\s*\w",
            _I,
        ),
    ),
    # Dump tools never run code at load time; a dump that does may never stop (E3).
    ("workload (CALL of a stored routine)", re.compile(r"^CALL\b", _I)),
    (
        "workload (recursive query)",
        re.compile(r"^(?:WITH|(?:SELECT|INSERT|REPLACE|DO)\b.*\bWITH)\s+RECURSIVE\b", _I),
    ),
)


def _separators(buf: bytes, start: int, end: int, *, exact: bool) -> int:
    """Row separators in ``buf[start:end]``, in constant memory (a list of matches would
    cost ~44 bytes per row: 1.4 GB for a 167 MB INSERT of tiny rows).

    ``exact``: literals may hold separators (the slow statement end matched), so they
    are walked; otherwise every separator is a real one and bytes.count finds them."""
    if exact:
        return sum(1 for m in _ROWS.finditer(buf, start, end) if m.group(1))
    n = buf.count(b"),(", start, end)
    if _SPACED_SEPARATOR.search(buf, start, end):
        n = sum(1 for _ in _SEPARATOR.finditer(buf, start, end))
    return n


def _end(m: re.Match[bytes] | None) -> int:
    assert m is not None  # the pattern matches the empty string
    return m.end()


def unquote(ident: str) -> str:
    if ident[:1] == "`":
        return ident[1:-1].replace("``", "`")
    if ident[:1] == '"':
        return ident[1:-1].replace('""', '"')
    return ident


# How the server tokenizes a statement (for reports): literals, quoted identifiers,
# comments, and executable comments ``/*!NNNNN … */`` / ``/*M!… */`` whose text is code
# (the opener reads as blank, the text stays: ``SET/*!GLOBAL*/`` reads ``SET GLOBAL``).
_TOKENS = Tokens(
    literals=_SINGLE + b"|" + _DOUBLE,
    quote=b"`",
    comment=rb"/\*M?!\d*|/\*(?:[^*]++|\*(?!/))*+\*/|\#[^\n]*+|--(?=[ \t\r\n])[^\n]*+|\*/",
)
code_text = _TOKENS.code_text


def normalize(raw: bytes, limit: int = 4096) -> str:
    """The statement's start as the server reads it: comments and executable-comment
    markers become spaces; literals and quoted identifiers stay (names are parsed)."""
    return _TOKENS.blank_comments(raw[:limit]).decode("utf-8", errors="replace").strip()


# DEFINER clauses outside literals (group 1: a literal, kept).
_DEFINER_CLAUSE = re.compile(
    b"(" + _SINGLE + b"|" + _DOUBLE + b")"
    rb"|DEFINER\s*=\s*(?:CURRENT_USER(?:\s*\(\s*\))?"
    rb"|(?:`(?:[^`]|``)+`|'[^']*'|\"[^\"]*\"|[\w$.-]+)\s*@\s*"
    rb"(?:`(?:[^`]|``)+`|'[^']*'|\"[^\"]*\"|[\w$.%-]+))",
    re.I | re.S,
)
_DEFINER_LESS = "(defined by the loading account, as in a definer-less load)"
DEFINER_SCAN = 4096  # a DEFINER clause is in a statement's head; deeper is a body


def without_definers(raw: bytes) -> tuple[bytes, list[str]]:
    """``raw`` with every DEFINER clause naming an account made ``DEFINER=CURRENT_USER``
    (a definer-less load: the loading account defines everything), and those clauses."""
    found: list[str] = []

    def sub(m: re.Match[bytes]) -> bytes:
        if m.group(1) is not None:
            return m.group(0)
        text = m.group(0)
        if re.fullmatch(rb"DEFINER\s*=\s*CURRENT_USER(?:\s*\(\s*\))?", text, re.I):
            return text
        found.append(" ".join(text.decode("utf-8", "replace").split()))
        return b"DEFINER=CURRENT_USER"

    head = _DEFINER_CLAUSE.sub(sub, raw[:DEFINER_SCAN])
    return (head + raw[DEFINER_SCAN:], found) if found else (raw, found)


# Functions a dump's INSERT values never call (dump tools write literals only).
_VALUE_CALLS = (b"load_file", b"sleep", b"benchmark")
_VALUE_CALL = re.compile(
    _SINGLE
    + b"|"
    + _DOUBLE
    + rb"|\b((?i:load_file|sleep|benchmark))(?:\s++|/\*(?:[^*]++|\*(?!/))*+\*/)*+\(",
    re.S,
)
_CHUNK = 1 << 20


def value_calls(raw: bytes, start: int, end: int | None = None) -> list[str]:
    """Calls of LOAD_FILE/SLEEP/BENCHMARK in an INSERT's values. A cheap case-blind
    search per 1 MiB finds candidates (a value's text may hold the words); only then
    are the literals walked to tell code from data, without copying the statement."""
    end = len(raw) if end is None else end
    hit = False
    for i in range(start, end, _CHUNK):
        low = raw[i : min(i + _CHUNK + 16, end)].lower()
        if any(w in low for w in _VALUE_CALLS):
            hit = True
            break
    if not hit:
        return []
    return sorted(
        {
            m.group(1).decode().upper()
            for m in _VALUE_CALL.finditer(raw, start, end)
            if m.group(1) is not None
        }
    )


class MySQLScanner(ScannerBase):
    dialect = "mysql"

    def __init__(self, default_db: str) -> None:
        super().__init__()
        self.delimiter = b";"
        # A client without --sandbox (MySQL's) stops at the sandbox line; blanking it is
        # safe only because the client's own --binary-mode/--commands=OFF is in effect.
        self.strip_sandbox_line = False
        self._fast = False
        self.db = default_db
        self.summary.schemas.append(default_db)
        # Hooks for the target: a statement about a database may be refused (raise),
        # mapped onto another database (return its name) or prepared for (grants).
        self.on_database: Callable[[str, str, StatementRef], str | None] | None = None
        # DEFINER clauses become the loading account's (see confine): sent rewritten.
        self.rewrite_definers = False
        # A DROP DATABASE blanked as --add-drop-database's (database, line, statement).
        self._pending_drop: tuple[str, int, bytes] | None = None
        self._override: bytes | None = None  # the statement as sent, when rewritten

    def _scan(self, buf: bytes, final: bool) -> int:
        pos = 0
        n = len(buf)
        limit = n if final else n - MARGIN
        while True:
            start = _end(_LEAD.match(buf, pos))
            if start > pos and (sb := _SANDBOX_LINE.search(buf, pos, start)):
                self.summary.sandbox_line = True
                if self.strip_sandbox_line:
                    self.blank(buf, sb.start(), sb.end(), "the sandbox-mode line (client flags)")
            if start >= n:
                return n if final or start == pos else pos
            d = _DELIMITER.match(buf, start)
            if d and (d.group(0).endswith(b"\n") or final):
                if d.end() > limit and not final:
                    return pos
                self.delimiter = d.group(1)
                self.record(buf, start, d.end())
                pos = d.end()
                continue
            fast = buf[start : start + 7].upper().startswith((b"INSERT", b"REPLACE"))
            end = _end((_insert_body if fast else _body)(self.delimiter).match(buf, start))
            if fast and not buf.startswith(self.delimiter, end):
                if end >= n - MARGIN or not _LITERAL.match(buf, end):
                    # The buffer ends inside the statement (or inside a literal): it goes
                    # on; scanning it again with _body now would only find the same.
                    return pos
                fast = False  # a literal holds a row separator
                end = _end(_body(self.delimiter).match(buf, start))
            if not buf.startswith(self.delimiter, end):
                return pos  # unfinished (or cut at the very end: finish() reports it)
            stop = end + len(self.delimiter)
            if stop > limit and not final:
                return pos
            self._fast = fast
            rewritten = len(self.summary.rewritten)
            self._override = None
            self._statement(buf, start, end, stop)
            if self.statement_sink is not None and (
                self._override is not None or len(self.summary.rewritten) == rewritten
            ):
                # A large statement goes as a view, not a copy (it may be as large as the
                # buffer); a small one as a copy, so it does not keep the buffer alive.
                raw = (
                    self._override
                    if self._override is not None
                    else (memoryview(buf)[start:end] if end - start > 1 << 20 else buf[start:end])
                )
                if len(raw):  # the client skips an empty statement; the server refuses it
                    self.statement_sink(raw, self.recent[-1])
            pos = stop

    def _statement(self, buf: bytes, start: int, end: int, stop: int) -> None:
        ref = self.record(buf, start, end)
        head = normalize(buf[start : min(end, start + 4096)])
        word = head[:16].upper()
        if self._pending_drop is not None:
            self._settle_drop(head)
        if word.startswith(("INSERT", "REPLACE")):
            self._insert(buf, start, end, head, ref)
            return
        # Other statements are small (DDL): one copy is fine (rewriting needs it).
        raw = buf[start:end]
        self._check_hostile(raw, ref)
        if word.startswith("CREATE"):
            self._create(buf, start, stop, head, ref)
        elif word.startswith("DROP"):
            self._drop(buf, start, stop, head, ref)
        elif word.startswith("USE"):
            if u := _USE.match(head):
                self._use(buf, start, stop, unquote(u.group(1)), ref)
        elif word.startswith(("TRUNCATE", "DELETE", "UPDATE")):
            if t := _TRUNCATE.match(head):
                self.table(self._key(t), ref.line).countable = False
        if self.rewrite_definers and "DEFINER" in head.upper():
            new, clauses = without_definers(raw)
            if clauses:
                self._override = new
                self.summary.rewritten.append(
                    f"line {ref.line}: {', '.join(clauses)} {_DEFINER_LESS}"
                )

    def _settle_drop(self, head: str) -> None:
        assert self._pending_drop is not None
        db, line, raw = self._pending_drop
        self._pending_drop = None
        m = _CREATE_DB.match(head)
        if not (m and unquote(m.group(1)) == db):
            self.hostile(line, "drops a database", raw)

    def finish(self) -> list[bytes]:
        out = super().finish()
        if self._pending_drop is not None:
            self._settle_drop("")
        cap_rewritten(self.summary.rewritten, _DEFINER_LESS, "DEFINER clauses")
        return out

    def _check_hostile(self, raw: bytes, ref: StatementRef) -> None:
        text = code_text(raw)
        for kind, rx in HOSTILE_MYSQL:
            if rx.search(text):
                self.hostile(ref.line, kind, raw)

    def _key(self, m: re.Match[str], g: int = 1) -> tuple[str, str]:
        a, b = m.group(g), m.group(g + 1)
        return (unquote(a), unquote(b)) if b else (self.db, unquote(a))

    def _insert(self, buf: bytes, start: int, end: int, head: str, ref: StatementRef) -> None:
        """Count an INSERT's rows in place (``buf[start:end]``: never copied, it may be
        the size of the whole buffer)."""
        m = _INSERT.match(head)
        if not m:
            return
        key = self._key(m)
        if key[0].lower() in SYSTEM_SCHEMAS:
            self.hostile(ref.line, "a system database", buf[start : min(end, start + 4096)])
        t = self.table(key, ref.line)
        # VALUES comes before any string literal in a dump's INSERT (after the
        # optional column list, which holds identifiers only).
        v = _VALUES.match(buf, start, end)
        word = v.group(1).upper() if v else b"SELECT"
        if v is None or word in (b"SELECT", b"WITH", b"("):
            t.countable = False
            # A query at load time (never in a dump tool's INSERTs): SLEEP, LOAD_FILE …
            self._check_hostile(buf[start : min(end, start + (1 << 16))], ref)
        elif word == b"SET":
            t.rows += 1
        elif buf.find(b"(", v.end(), end) != -1:
            if calls := value_calls(buf, v.end(), end):
                kind = (
                    "file read (LOAD_FILE)"
                    if "LOAD_FILE" in calls
                    else ("workload (SLEEP/BENCHMARK)")
                )
                self.hostile(ref.line, kind, buf[start : min(end, start + 4096)])
            t.rows += 1 + _separators(buf, v.end(), end, exact=not self._fast)

    def _create(self, buf: bytes, start: int, stop: int, head: str, ref: StatementRef) -> None:
        if m := _CREATE_TABLE.match(head):
            if m.group(1):
                return  # TEMPORARY
            key = self._key(m, 2)
            self.summary.tables.pop(key, None)
            t = self.table(key, ref.line)
            if re.search(r"\bSELECT\b", head[m.end() :], re.I):
                t.countable = False
        elif m := _CREATE_DB.match(head):
            name = unquote(m.group(1))
            if self.on_database is not None:
                new = self.on_database("create", name, ref)
                if new is not None:
                    self.blank(buf, start, stop, f"CREATE DATABASE {name} (restored into {new})")
                    return
            if name not in self.summary.schemas:
                self.summary.schemas.append(name)
        elif m := _CREATE_OBJ.match(head):
            kind = m.group(1).upper()
            self._objects(kind).add(self._key(m, 2))

    def _objects(self, kind: str) -> set[tuple[str, str]]:
        s = self.summary
        return {"VIEW": s.views, "TRIGGER": s.triggers, "EVENT": s.events}.get(kind, s.routines)

    def _drop(self, buf: bytes, start: int, stop: int, head: str, ref: StatementRef) -> None:
        if m := _DROP_OBJ.match(head):
            self._objects(m.group(1).upper()).discard(self._key(m, 2))
        elif m := _DROP_TABLE.match(head):
            for name in re.finditer(_QN, m.group(1)):
                self.summary.tables.pop(self._key(name), None)
        elif (d := _DROP_DB.match(head)) and self.on_database is not None:
            # mysqldump --add-drop-database: the target decides (grant it, blank it, or
            # refuse); the statement is blanked when it answers with a database.
            db = unquote(d.group(1) or "")
            if (new := self.on_database("drop", db, ref)) is not None:
                self.blank(buf, start, stop, f"DROP DATABASE {db} ({new} is made for the test)")
                # Blanked only as --add-drop-database writes it: right before its CREATE
                # DATABASE. Anything else after it reports the drop (see _statement).
                self._pending_drop = (db, ref.line, buf[start : min(stop, start + 4096)])

    def _use(self, buf: bytes, start: int, stop: int, name: str, ref: StatementRef) -> None:
        if self.on_database is not None:
            new = self.on_database("use", name, ref)
            if new is not None:
                self.blank(buf, start, stop, f"USE {name} (restored into {new})")
                self.db = new
                return
        self.db = name
        if name not in self.summary.schemas:
            self.summary.schemas.append(name)

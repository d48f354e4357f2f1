"""Where shards put their results: a folder or an S3 prefix, written create-only.

A shard run writes its results in parts, ``shard-00003-of-00010-<run>-0001.jsonl``,
one JSON Lines row per item (``ItemResult``). Every part is a new name (the run's UTC
stamp and a random tag) and is written whole or not at all:

* a folder: a temp file in it, fsynced, then hard-linked to its name (``link`` fails
  when the name exists: nothing is ever replaced), then the folder fsynced;
* S3: ``PutObject`` with ``If-None-Match: *``: the store refuses to overwrite.

A part is flushed every ``FLUSH_ROWS`` results or ``FLUSH_SECONDS``, and at the end, so
a shard killed midway loses at most that much work, which its rerun redoes: a rerun
reads what the destination holds for its plan and skips every item already proved.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from ..errors import SealcheckError, UsageError
from ..storage.s3.client import S3Settings, make_client, parse_uri
from .item import ItemResult

FLUSH_ROWS = 100
FLUSH_SECONDS = 15.0
SUFFIX = ".jsonl"


class ResultsError(SealcheckError):
    """The shard results cannot be written or read."""


@dataclass(frozen=True)
class Row:
    result: ItemResult
    where: str  # the part and line it came from, for people


class Destination(Protocol):
    name: str

    def put_new(self, name: str, body: bytes) -> bool:
        """Create ``name`` with ``body``; False when it already exists (untouched)."""

    def parts(self) -> list[str]: ...

    def read(self, name: str) -> bytes: ...


class Folder:
    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        self.name = str(path)
        if create:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ResultsError(
                    f"cannot make the folder ({exc.strerror})", obj=self.name
                ) from None
        elif not path.is_dir():
            raise ResultsError("no such folder", obj=self.name)

    def put_new(self, name: str, body: bytes) -> bool:
        dest = self.path / name
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{name}.", suffix=".partial")
        except OSError as exc:
            raise ResultsError(f"cannot write there ({exc.strerror})", obj=self.name) from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, dest)  # never replaces: fails when the name exists
        except FileExistsError:
            return False
        except OSError as exc:
            raise ResultsError(f"cannot write {name} ({exc.strerror})", obj=self.name) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        dfd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return True

    def parts(self) -> list[str]:
        try:
            return sorted(
                p.name
                for p in self.path.iterdir()
                if p.name.endswith(SUFFIX) and not p.name.startswith(".") and p.is_file()
            )
        except OSError as exc:
            raise ResultsError(f"cannot list it ({exc.strerror})", obj=self.name) from None

    def read(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except OSError as exc:
            raise ResultsError(f"cannot read {name} ({exc.strerror})", obj=self.name) from None


class Prefix:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket = client, bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.name = f"s3://{bucket}/{self.prefix}"

    def put_new(self, name: str, body: bytes) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self.prefix + name, Body=body, IfNoneMatch="*"
            )
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (409, 412):  # exists, or a concurrent write of the same name
                return False
            raise ResultsError(f"cannot write {name} ({_code(exc)})", obj=self.name) from None
        except BotoCoreError as exc:
            raise ResultsError(f"cannot write {name} ({exc})", obj=self.name) from None
        return True

    def parts(self) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        names = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for obj in page.get("Contents", ()):
                    rest = obj["Key"][len(self.prefix) :]
                    if "/" not in rest and rest.endswith(SUFFIX):
                        names.append(rest)
        except ClientError as exc:
            raise ResultsError(f"cannot list it ({_code(exc)})", obj=self.name) from None
        except BotoCoreError as exc:
            raise ResultsError(f"cannot list it ({exc})", obj=self.name) from None
        return sorted(names)

    def read(self, name: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"]
            return bytes(body.read())
        except ClientError as exc:
            raise ResultsError(f"cannot read {name} ({_code(exc)})", obj=self.name) from None
        except BotoCoreError as exc:
            raise ResultsError(f"cannot read {name} ({exc})", obj=self.name) from None


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code") or exc)


def destination(
    spec: str, settings: S3Settings, *, create: bool, client: Any = None
) -> Destination:
    """``DIR`` or ``s3://BUCKET/PREFIX``."""
    if spec.startswith("s3://"):
        uri = parse_uri(spec)
        return Prefix(client or make_client(settings), uri.bucket, uri.key)
    if "://" in spec:
        raise UsageError(f"--results {spec}: give a folder or s3://BUCKET/PREFIX")
    return Folder(Path(spec), create=create)


@dataclass(frozen=True, slots=True)
class Place:
    """Where a result row is, to read it again: its part (``Parts`` numbers them), line
    number, byte offset and length in the part, and a digest of its bytes (identical rows
    are told without reading them again; a part changed since is noticed)."""

    part: int
    line: int
    offset: int
    length: int
    digest: bytes


def _digest(line: bytes) -> bytes:
    return hashlib.blake2b(line, digest_size=16).digest()


class Parts:
    """The result parts a merge reads: each part read once, in order, keeping of each row
    only its ``Place``; a row read again later by its place. A folder's part is read
    again from the folder; an S3 part (a GET each) is kept in an unnamed temporary file
    while the merge runs (results hold no secret). So a merge holds one part at a time,
    not every row of the campaign."""

    def __init__(self) -> None:
        self._parts: list[tuple[str, Path | None, int]] = []  # name, its file, base offset
        self._spool: IO[bytes] | None = None
        self._used: set[int] = set()  # the parts that held rows of the plan

    def __enter__(self) -> Parts:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def scan(self, dest: Destination, plan_sha256: str) -> Iterator[tuple[ItemResult, Place]]:
        """Every result row of this plan in the destination (other plans' are passed over:
        a prefix may hold several nights' results)."""
        for part in dest.parts():
            body = dest.read(part)
            name = f"{dest.name.rstrip('/')}/{part}"
            if isinstance(dest, Folder):
                self._parts.append((name, dest.path / part, 0))
            else:
                spool = self._spool = self._spool or tempfile.TemporaryFile()
                base = spool.seek(0, os.SEEK_END)
                spool.write(body)
                self._parts.append((name, None, base))
            number = len(self._parts) - 1
            offset = 0
            for n, raw in enumerate(body.split(b"\n"), 1):
                at, offset = offset, offset + len(raw) + 1
                line = raw.rstrip(b"\r")
                if not line.strip():
                    continue
                r = _row(line.decode("utf-8", "replace"), f"{name} line {n}")
                if r.plan == plan_sha256:
                    self._used.add(number)
                    yield r, Place(number, n, at, len(line), _digest(line))

    def ran(self) -> tuple[int | None, int | None]:
        """What the names of the parts that held rows of the plan say ran them
        (``PartWriter``'s names): the number of shards the plan was cut in, and how many
        shard runs wrote them (a rerun is one more); each None when the names do not say
        (parts named otherwise, or shards cut in different numbers)."""
        counts: set[int] = set()
        runs: set[str] = set()
        for number in self._used:
            m = _PART_NAME.fullmatch(self._parts[number][0].rsplit("/", 1)[-1])
            if m is None:
                return None, None
            counts.add(int(m["of"]))
            runs.add(m["run"])
        return (counts.pop() if len(counts) == 1 else None), len(runs) or None

    def where(self, p: Place) -> str:
        """The part and line, for people."""
        return f"{self._parts[p.part][0]} line {p.line}"

    def read(self, places: Iterable[Place]) -> list[ItemResult]:
        """The rows at these places, in the order given (each part opened once)."""
        want = list(places)
        by_part: dict[int, list[Place]] = {}
        for p in want:
            by_part.setdefault(p.part, []).append(p)
        got: dict[Place, ItemResult] = {}
        for number, here in sorted(by_part.items()):
            name, path, base = self._parts[number]
            here.sort(key=lambda p: p.offset)
            try:
                f = path.open("rb") if path is not None else None
            except OSError as exc:
                raise ResultsError(f"cannot read it again ({exc.strerror})", obj=name) from None
            src = f or self._spool
            assert src is not None
            try:
                # The span of the part these rows are in, in one read (a part is at
                # most a flush of rows): not a seek and a read per row.
                start = here[0].offset
                src.seek(base + start)
                span = src.read(max(p.offset + p.length for p in here) - start)
                for p in here:
                    line = span[p.offset - start : p.offset - start + p.length]
                    if _digest(line) != p.digest:
                        raise ResultsError(
                            f"line {p.line} changed while the merge read it", obj=name
                        )
                    got[p] = _row(line.decode("utf-8", "replace"), self.where(p))
            finally:
                if f is not None:
                    f.close()
        return [got[p] for p in want]


def _row(line: str, where: str) -> ItemResult:
    try:
        return ItemResult.from_json(line, where)
    except SealcheckError as exc:
        raise ResultsError(exc.message()) from None


def read_rows(dest: Destination, plan_sha256: str) -> Iterator[Row]:
    """Every result row of this plan in the destination (other plans' are passed over:
    a prefix may hold several nights' results)."""
    for part in dest.parts():
        text = dest.read(part).decode("utf-8", "replace")
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{dest.name.rstrip('/')}/{part} line {n}"
            r = _row(line, where)
            if r.plan == plan_sha256:
                yield Row(r, where)


# PartWriter's part names: the run is the shard, its count, the run's stamp and tag.
_PART_NAME = re.compile(r"(?P<run>shard-\d+-of-(?P<of>\d+)-\w+-[0-9a-f]+)-\d+" + re.escape(SUFFIX))


class PartWriter:
    """A shard run's results, flushed in create-only parts (see the module docstring)."""

    def __init__(self, dest: Destination, shard: int, of: int) -> None:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.dest = dest
        self.stem = f"shard-{shard:05d}-of-{of:05d}-{stamp}-{secrets.token_hex(4)}"
        self.pending: list[str] = []
        self.parts: list[str] = []
        self.written = 0
        self._last = time.monotonic()

    def add(self, r: ItemResult) -> None:
        self.pending.append(r.to_json())
        if len(self.pending) >= FLUSH_ROWS or time.monotonic() - self._last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if not self.pending:
            return
        name = f"{self.stem}-{len(self.parts) + 1:04d}{SUFFIX}"
        body = ("\n".join(self.pending) + "\n").encode()
        if not self.dest.put_new(name, body):
            raise ResultsError(f"{name} is there already; nothing was replaced", obj=self.dest.name)
        self.parts.append(name)
        self.written += len(self.pending)
        self.pending = []

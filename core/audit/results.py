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
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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


def read_rows(dest: Destination, plan_sha256: str) -> Iterator[Row]:
    """Every result row of this plan in the destination (other plans' are passed over:
    a prefix may hold several nights' results)."""
    for part in dest.parts():
        text = dest.read(part).decode("utf-8", "replace")
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{dest.name.rstrip('/')}/{part} line {n}"
            try:
                r = ItemResult.from_json(line, where)
            except SealcheckError as exc:
                raise ResultsError(exc.message()) from None
            if r.plan == plan_sha256:
                yield Row(r, where)


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

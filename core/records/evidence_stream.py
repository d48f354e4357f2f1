"""A report's records streamed, not held: a campaign of 100,000 versions is ~640 MB of
records as JSON, and holding them (and the JSON of them, twice) peaked at 4.2 GB.

A body's ``entries`` may be a ``Records``: the history's entries read back a batch at a
time, in the report's order, each made into its record as it is read. It can be walked
more than once (the signature's digest, then the rendering; HTML walks it twice more),
which costs a read of the history per walk and holds one batch.

The renderings are the same bytes as serialising the whole body at once: a document is
serialised with its ``entries`` member replaced by a unique token, and the records are
serialised one by one into the token's place (``spliced``), with the separators and the
indentation ``json.dumps`` gives a list at that depth. JSON text never holds a raw
newline inside a string, so re-indenting one record's text is exact.
"""

from __future__ import annotations

import gc
import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from .history import Entry

BATCH = 500  # history entries read back at a time
WRITE_BYTES = 1 << 20  # what a writer gathers before a write


class Records:
    """The records of history entries ``ids``, in that order, read from the history a
    batch at a time (``fetch``: entries by id) and each made a record by ``render``."""

    def __init__(
        self,
        ids: Sequence[int],
        fetch: Callable[[Sequence[int]], Iterable[Entry]],
        render: Callable[[Entry], dict[str, Any]],
        *,
        batch: int = BATCH,
    ) -> None:
        self.ids = list(ids)
        self._fetch, self._render, self._batch = fetch, render, batch

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for at in range(0, len(self.ids), self._batch):
            part = self.ids[at : at + self._batch]
            got = {e.id: e for e in self._fetch(part)}
            for i in part:
                e = got.get(i)
                if e is None:
                    raise ValueError(f"history entry {i} is no longer in the history")
                yield self._render(e)
            del got
            # What the batch made and dropped includes reference cycles (json's indenting
            # encoder is closures that refer to each other; reading records back), which
            # only the collector frees, and a merge pauses it (audit.merge.bulk): free
            # them now, or a report of 100,000 records keeps ~0.6 GB of them. The young
            # generation is this batch's objects, so this costs little.
            gc.collect(0)


def entries_of(body: dict[str, Any]) -> Iterable[dict[str, Any]]:
    entries: Iterable[dict[str, Any]] = body["entries"]
    return entries


def ids_of(body: dict[str, Any]) -> list[int]:
    """The history ids of a body's records, without a walk when it streams."""
    entries = body["entries"]
    if isinstance(entries, Records):
        return list(entries.ids)
    return [int(r["history_id"]) for r in entries]


def materialised(body: dict[str, Any]) -> dict[str, Any]:
    """The body with its records in a list (for a rendering that cannot stream)."""
    if isinstance(body["entries"], list):
        return body
    return {**body, "entries": list(body["entries"])}


class Frame:
    """``dumps(doc)`` cut around the list at ``path`` (members, from the top), with the
    separators ``json.dumps`` puts around and between that list's items when it is
    indented by ``indent`` (None: compact), so the items can be serialised one at a
    time into their place: ``head``, then ``opening`` + item, ``sep`` + item, … and
    ``closing`` (or ``empty``), then ``tail``."""

    def __init__(
        self,
        doc: dict[str, Any],
        path: Sequence[str],
        dumps: Callable[[Any], str],
        *,
        indent: int | None,
    ) -> None:
        token = "sealcheck-records-" + secrets.token_hex(16)
        text = dumps(_replaced(doc, path, token))
        mark = json.dumps(token)
        at = text.find(mark)
        if at < 0 or text.find(mark, at + 1) >= 0:
            raise AssertionError("the records' place was not found once")
        self.head, self.tail, self.dumps = text[:at], text[at + len(mark) :], dumps
        if indent is None:
            self.pad, self.opening, self.sep, self.closing = "", "[", ",", "]"
        else:
            line = text[text.rfind("\n", 0, at) + 1 : at]  # '    "entries": '
            depth = len(line) - len(line.lstrip(" "))
            self.pad = "\n" + " " * (depth + indent)
            self.opening, self.sep = "[" + self.pad, "," + self.pad
            self.closing = "\n" + " " * depth + "]"

    def item(self, value: Any, first: bool) -> str:
        """One item, with what goes before it."""
        one = self.dumps(value)
        if self.pad:
            one = one.replace("\n", self.pad)  # JSON strings hold no raw newline
        return (self.opening if first else self.sep) + one

    def end(self, empty: bool) -> str:
        return "[]" if empty else self.closing


def spliced(
    doc: dict[str, Any],
    path: Sequence[str],
    dumps: Callable[[Any], str],
    records: Iterable[Any],
    *,
    indent: int | None,
) -> Iterator[str]:
    """``dumps(doc)`` in pieces, the list at ``path`` taken one item at a time from
    ``records`` instead of the list the document holds there."""
    f = Frame(doc, path, dumps, indent=indent)
    yield f.head
    first = True
    for r in records:
        yield f.item(r, first)
        first = False
    yield f.end(first)
    yield f.tail


def _replaced(doc: dict[str, Any], path: Sequence[str], value: Any) -> dict[str, Any]:
    """A shallow copy of ``doc`` with the member at ``path`` replaced, in its place."""
    if len(path) == 1:
        return {**doc, path[0]: value}
    return {**doc, path[0]: _replaced(doc[path[0]], path[1:], value)}


class Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class Gathered:
    """Writes to ``out`` in pieces of about ``WRITE_BYTES``: a report is written in
    hundreds of thousands of small pieces."""

    def __init__(self, out: Writable) -> None:
        self._out = out
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= WRITE_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            self._out.write(b"".join(self._parts))
            self._parts, self._size = [], 0

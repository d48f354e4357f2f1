"""The contract of an envelope opener, one per encryption format (decrypt/registry.py).

An opener is given the object's first bytes and what the user holds, finds and
proves the key (before the download where the format allows it), starts the
download and returns the plaintext stream. What it proves goes into the run's
evidence as it goes: the key layer once the key is proved, and, through ``done``,
the cipher layer once every byte was decrypted and the format's end checks passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..formats import Fmt
from ..plumbing.progress import CancelToken, Meter
from ..plumbing.streams import Reader
from ..records.identity import SourceIdentity
from ..records.report import LayerResult, Status
from ..storage.source import Source
from .secrets import Secrets

# What a started layer has done when the run stops before it recorded its result: a
# sentence ("incomplete"), its full result (it did reach its end), or None (nothing).
Partial = Callable[[], "str | LayerResult | None"]


class EvidenceSink(Protocol):
    """Where an opener records what it proved (the pipeline's per-run evidence)."""

    layers: dict[str, LayerResult]
    formats: list[str]
    warnings: list[str]
    wrapped: SourceIdentity | None
    # A streamed layer, once started: what it has done so far (see Partial).
    partial: dict[str, Partial]

    def ok(self, layer: str, proved: str, **details: Any) -> None: ...

    def set(self, layer: str, status: Status, proved: str, **details: Any) -> None: ...


@dataclass(frozen=True)
class OpenRequest:
    """What an opener is given: the object, its first bytes, what the user holds,
    and the pipeline's hooks (the download starts only when the opener asks)."""

    src: Source
    head: bytes
    fmt: Fmt | None
    secrets: Secrets
    wrapped_key: Source | None
    cancel: CancelToken
    meter: Meter
    # Starts the full download and returns its stream (hashed as it is read).
    start_fetch: Callable[[], Reader]
    # Records the source layer; call it once the stream was read to its end.
    source_done: Callable[[], None]
    # Run when the run ends, in order: stop workers, remove private homes.
    closers: list[Callable[[], None]]


@dataclass(frozen=True)
class Opened:
    """The plaintext stream, and ``done``: called once it was read to its end, it
    records the source, key and cipher layers that the end proves."""

    reader: Reader
    done: Callable[[], None]


Opener = Callable[[OpenRequest, EvidenceSink], Opened]

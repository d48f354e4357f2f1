"""The verification record: what each layer proved, as frozen dataclasses.

This is what an auditor reads and what the history stores, so it serialises to
plain JSON and never contains secret material (no keys, passwords or DEKs).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ExitCode, SealcheckError
from .sources import SourceIdentity


class Status(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    WARNING = "warning"
    SKIPPED = "skipped"
    NOT_REACHED = "not reached"


@dataclass(frozen=True)
class LayerResult:
    layer: str
    status: Status
    proved: str  # one sentence: what this layer established (or why it failed)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorInfo:
    kind: str
    layer: str | None
    message: str
    exit_code: int

    @classmethod
    def from_exc(cls, exc: SealcheckError) -> ErrorInfo:
        return cls(
            type(exc).__name__,
            exc.layer.value if exc.layer else None,
            exc.message(),
            int(exc.exit_code),
        )


@dataclass(frozen=True)
class Report:
    operation: str  # "verify" or "restore"
    source: SourceIdentity | None
    wrapped_key: SourceIdentity | None
    ok: bool
    layers: tuple[LayerResult, ...]
    formats: tuple[str, ...]
    error: ErrorInfo | None
    started_at: str
    duration_s: float
    sealcheck_version: str
    destination: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return int(ExitCode.OK) if self.error is None else self.error.exit_code

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _plain(dataclasses.asdict(self))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def layer(self, name: str) -> LayerResult | None:
        return next((x for x in self.layers if x.layer == name), None)


def _plain(obj: Any) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj

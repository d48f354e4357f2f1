"""The verification record: what each layer proved, as frozen dataclasses.

This is what an auditor reads and what the history stores, so it serialises to
plain JSON and never contains secret material (no keys, passwords or DEKs).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import ExitCode, SealcheckError
from .identity import SourceIdentity

_T = TypeVar("_T")
_E = TypeVar("_E", bound=enum.Enum)


class Status(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    WARNING = "warning"
    SKIPPED = "skipped"
    NOT_REACHED = "not reached"  # after the step that failed: it never ran
    # A streamed layer that ran without error on part of the data, then stopped with the
    # stream when another layer failed: its end-of-data checks were never made.
    INCOMPLETE = "incomplete"
    # The step that could not be carried out for want of a key, the storage or a server:
    # no finding on the backup (a setup problem, verdict.py).
    NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class LayerResult:
    layer: str
    status: Status
    proved: str  # one sentence: what this layer established (or why it failed)
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, where: str = "layer") -> LayerResult:
        # The common case read directly (a merge reads 600,000 layers); anything else,
        # and every error, as Fields reads it.
        if type(d) is dict:
            layer, proved, details = d.get("layer"), d.get("proved"), d.get("details", _NONE)
            if type(layer) is str and type(proved) is str and type(details) is dict:
                st = d.get("status")
                status = _STATUSES.get(st) if type(st) is str else None
                if status is not None:
                    return cls(layer, status, proved, _copy_json(details))
        f = Fields(d, where)
        return cls(
            f.text("layer"), f.choice("status", Status), f.text("proved"), f.obj("details", {})
        )


# The statuses by value, for the common case of LayerResult.from_dict.
_STATUSES: dict[str, Status] = {s.value: s for s in Status}
_NONE: dict[str, Any] = {}


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

    @classmethod
    def from_dict(cls, d: Any, where: str = "error") -> ErrorInfo:
        f = Fields(d, where)
        return cls(f.text("kind"), f.opt_text("layer"), f.text("message"), f.integer("exit_code"))


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

    @classmethod
    def from_dict(cls, d: Any, where: str = "report") -> Report:
        """The inverse of ``to_dict``. Keys a newer Sealcheck added are ignored; a
        missing or mistyped field raises ValueError naming where it is."""
        fast = _fast_report(cls, d, where)
        if fast is not None:
            return fast
        f = Fields(d, where)
        return cls(
            operation=f.text("operation"),
            source=f.opt_nested("source", SourceIdentity.from_dict),
            wrapped_key=f.opt_nested("wrapped_key", SourceIdentity.from_dict),
            ok=f.flag("ok"),
            layers=f.items("layers", LayerResult.from_dict),
            formats=f.strs("formats"),
            error=f.opt_nested("error", ErrorInfo.from_dict),
            started_at=f.text("started_at"),
            duration_s=f.number("duration_s"),
            sealcheck_version=f.text("sealcheck_version"),
            destination=f.opt_text("destination"),
            warnings=f.strs("warnings", ()),
        )

    def layer(self, name: str) -> LayerResult | None:
        return next((x for x in self.layers if x.layer == name), None)


def _fast_report(cls: type[Report], d: Any, where: str) -> Report | None:
    """``Report.from_dict`` of the common case, read directly (a merge reads 100,000
    records): every top-level field of its exact JSON type, the nested records read by
    their own ``from_dict`` in the order Fields reads them (so a bad one raises the same
    error). None for anything else: Fields then reads it, and names what is wrong."""
    if type(d) is not dict:
        return None
    g = d.get
    op, ok, started, version = g("operation"), g("ok"), g("started_at"), g("sealcheck_version")
    duration, layers, formats, warnings = (
        g("duration_s"),
        g("layers"),
        g("formats"),
        g("warnings", ()),
    )
    destination = g("destination")
    if not (
        type(op) is str
        and type(ok) is bool
        and type(started) is str
        and type(version) is str
        and type(duration) in (int, float)
        and type(layers) is list
        and type(formats) is list
        and type(warnings) in (list, tuple)
        and (destination is None or type(destination) is str)
        and all(type(x) is str for x in formats)
        and all(type(x) is str for x in warnings)
    ):
        return None
    source, wrapped, error = g("source"), g("wrapped_key"), g("error")
    return cls(
        operation=op,
        source=None if source is None else SourceIdentity.from_dict(source, f"{where}.source"),
        wrapped_key=(
            None if wrapped is None else SourceIdentity.from_dict(wrapped, f"{where}.wrapped_key")
        ),
        ok=ok,
        layers=tuple(
            LayerResult.from_dict(v, f"{where}.layers[{i}]") for i, v in enumerate(layers)
        ),
        formats=tuple(formats),
        error=None if error is None else ErrorInfo.from_dict(error, f"{where}.error"),
        started_at=started,
        duration_s=float(d["duration_s"]),  # an int or a float (above)
        sealcheck_version=version,
        destination=destination,
        warnings=tuple(warnings),
    )


def _plain(obj: Any) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


_MISSING = object()


def _copy_json(v: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a JSON object, owned by the caller: what ``copy.deepcopy`` gives for
    JSON data (objects, arrays, scalars), in a fraction of its time (a sharded
    campaign's merge reads 100,000 records). Anything else is deep-copied as before."""

    def one(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: y if type(y) in _SCALARS else one(y) for k, y in x.items()}
        if isinstance(x, list):
            return [y if type(y) in _SCALARS else one(y) for y in x]
        if x is None or isinstance(x, str | int | float | bool):
            return x
        return copy.deepcopy(x)

    # Most members are scalars, kept without a call each (a merge's 100,000 records
    # hold millions of them); their exact types only: a subclass still goes through one.
    d = v if type(v) is dict else dict(v)
    return {k: y if type(y) in _SCALARS else one(y) for k, y in d.items()}


_SCALARS = frozenset({str, int, float, bool, type(None)})


class Fields:
    """Typed reads from one JSON object, for the ``from_dict`` readers.

    Every error names the path of the bad field (``report.layers[2].status``), so a
    damaged history row or a hand-edited file says what is wrong. A default given
    to a read makes the field optional (older writers); keys nobody reads are
    ignored (newer writers).
    """

    def __init__(self, d: Any, where: str) -> None:
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(d).__name__}")
        self._d = d
        self.where = where

    def _get(self, key: str, default: Any) -> Any:
        v = self._d.get(key, default)
        if v is _MISSING:
            raise ValueError(f"{self.where}.{key}: missing")
        return v

    def _bad(self, key: str, want: str, value: Any) -> ValueError:
        return ValueError(f"{self.where}.{key}: expected {want}, got {type(value).__name__}")

    def text(self, key: str, default: Any = _MISSING) -> str:
        v = self._get(key, default)
        if not isinstance(v, str):
            raise self._bad(key, "a string", v)
        return v

    def opt_text(self, key: str) -> str | None:
        v = self._get(key, None)
        if v is not None and not isinstance(v, str):
            raise self._bad(key, "a string or null", v)
        return v

    def flag(self, key: str, default: Any = _MISSING) -> bool:
        v = self._get(key, default)
        if not isinstance(v, bool):
            raise self._bad(key, "true or false", v)
        return v

    def integer(self, key: str, default: Any = _MISSING) -> int:
        v = self._get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):  # JSON true is not a count
            raise self._bad(key, "an integer", v)
        return v

    def opt_integer(self, key: str) -> int | None:
        return None if self._get(key, None) is None else self.integer(key)

    def number(self, key: str, default: Any = _MISSING) -> float:
        v = self._get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self._bad(key, "a number", v)
        return float(v)

    def opt_number(self, key: str) -> float | None:
        return None if self._get(key, None) is None else self.number(key)

    def choice(self, key: str, kind: type[_E]) -> _E:
        v = self._get(key, _MISSING)
        try:
            return kind(v)
        except ValueError:
            raise ValueError(f"{self.where}.{key}: {v!r} is not a valid {kind.__name__}") from None

    def obj(self, key: str, default: Any = _MISSING) -> dict[str, Any]:
        """A free-form JSON object (layer details), copied so the result owns it."""
        v = self._get(key, default)
        if not isinstance(v, Mapping):
            raise self._bad(key, "an object", v)
        return _copy_json(v)

    def _list(self, key: str, default: Any) -> list[Any]:
        v = self._get(key, default)
        if not isinstance(v, list | tuple):
            raise self._bad(key, "a list", v)
        return list(v)

    def strs(self, key: str, default: Any = _MISSING) -> tuple[str, ...]:
        out = self._list(key, default)
        for i, v in enumerate(out):
            if not isinstance(v, str):
                raise self._bad(f"{key}[{i}]", "a string", v)
        return tuple(out)

    def objs(self, key: str, default: Any = _MISSING) -> tuple[dict[str, Any], ...]:
        out = self._list(key, default)
        for i, v in enumerate(out):
            if not isinstance(v, Mapping):
                raise self._bad(f"{key}[{i}]", "an object", v)
        return tuple(_copy_json(v) for v in out)

    def items(
        self, key: str, read: Callable[[Any, str], _T], default: Any = _MISSING
    ) -> tuple[_T, ...]:
        return tuple(
            read(v, f"{self.where}.{key}[{i}]") for i, v in enumerate(self._list(key, default))
        )

    def opt_nested(self, key: str, read: Callable[[Any, str], _T]) -> _T | None:
        v = self._get(key, None)
        return None if v is None else read(v, f"{self.where}.{key}")

    def typed(self, key: str, hint: Any, default: Any = _MISSING) -> Any:
        """A field read by its annotated type: ``str``, ``bool``, ``int``, ``float``,
        ``X | None`` (absent: None), ``tuple[str, ...]``, ``tuple[dict, ...]``, ``dict``,
        or a record type with ``from_dict`` (alone, optional or in a tuple)."""
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (types.UnionType, typing.Union) and type(None) in args:
            inner = next(a for a in args if a is not type(None))
            scalar = {str: self.opt_text, int: self.opt_integer, float: self.opt_number}
            if inner in scalar:
                return scalar[inner](key)
            return self.opt_nested(key, inner.from_dict)
        if origin is tuple:
            item = args[0]
            if item is str:
                return self.strs(key, default)
            if typing.get_origin(item) is dict:
                return self.objs(key, default)
            return self.items(key, item.from_dict, default)
        if origin is dict:
            return self.obj(key, default)
        plain = {str: self.text, bool: self.flag, int: self.integer, float: self.number}
        return plain[hint](key, default)


def read_record(cls: type[_T], d: Any, where: str) -> _T:
    """A record dataclass from its JSON object, each field read by its annotated type
    (see ``Fields.typed``); a field with a default is optional (older writers)."""
    f = Fields(d, where)
    hints = typing.get_type_hints(cls)
    kw: dict[str, Any] = {}
    for fld in dataclasses.fields(cls):  # type: ignore[arg-type]
        if fld.default is not dataclasses.MISSING:
            default: Any = fld.default
        elif fld.default_factory is not dataclasses.MISSING:
            default = fld.default_factory()
        else:
            default = _MISSING
        kw[fld.name] = f.typed(fld.name, hints[fld.name], default)
    return cls(**kw)

"""Which check reads which binary payload: one explicit table.

Explicit rather than checks that register themselves when imported (see
decrypt/registry.py): read in one place, independent of import order. A new
binary payload is one check module (StructureCheck below is the contract) and
one line here. Text dumps are recognised by their first lines, not by a magic,
so the inspector reads them itself (TEXT).

pg_dump's archive and tar checks are named here by small functions that import them
when such a payload is found: a verify of a text dump loads neither (issue 17,
start-up is part of the job).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from ..formats import Fmt
from .info import PayloadInfo
from .xbstream import XbstreamCheck


class StructureCheck(Protocol):
    """A binary payload read to its end, fed every plaintext byte.

    Created once the payload is identified, it records what the payload is in the
    ``PayloadInfo`` it is given; ``finish`` fills in what the end proved and raises
    the payload layer's typed error when the payload is damaged or incomplete.
    """

    def feed(self, data: bytes) -> None: ...

    def finish(self, total: int) -> None: ...


class CheckFactory(Protocol):
    def __call__(self, info: PayloadInfo, *, obj: str | None = None) -> StructureCheck: ...


def _pg_custom(info: PayloadInfo, *, obj: str | None = None) -> StructureCheck:
    from .pgdump.judge import PgCustomCheck

    return PgCustomCheck(info, obj=obj)


def _tar(info: PayloadInfo, *, obj: str | None = None) -> StructureCheck:
    from .pgdump.judge import TarArchiveCheck

    return TarArchiveCheck(info, obj=obj)


CHECKS: Mapping[Fmt, CheckFactory] = MappingProxyType(
    {
        Fmt.XBSTREAM: XbstreamCheck,
        Fmt.PGDUMP_CUSTOM: _pg_custom,
        Fmt.TAR: _tar,
    }
)
# Read by the inspector's own recogniser of mysqldump, pg_dump and Sequel Pro text.
TEXT: frozenset[Fmt] = frozenset({Fmt.SQL})
# Recognised payloads that are not read yet: the report says "not judged" (a
# failure only with --strict), as for any payload Sealcheck does not recognise.
NOT_JUDGED: frozenset[Fmt] = frozenset({Fmt.ZIP})

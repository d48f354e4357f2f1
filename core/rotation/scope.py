"""Which data versions a rotation covers, and the re-wrapped keys already there.

One version listing of the prefix, made and paired exactly as ``sealcheck list`` makes
and pairs it (listing.py: what a paginated listing drops re-listed; a data version with
the key version written within the hour). The re-wrapped keys (rewrap.py links) are
set aside: they say what is already done.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..storage.listing import Grouper, iter_complete_pages
from ..storage.naming import Rule
from ..storage.rewrap import UNVERSIONED_ID, Link, parse_link
from .journal import Item, Step


class Scope(enum.Enum):
    CURRENT = "current"  # the newest live version of each backup
    ALL = "all"  # every live version


@dataclass
class Listed:
    items: list[Item]
    # (key name, data version) -> the links there, each with its version id
    links: dict[tuple[str, str], list[tuple[Link, str | None]]]
    versions: int
    pages: int


def list_scope(
    client: Any,
    bucket: str,
    prefix: str,
    rules: Sequence[Rule],
    scope: Scope,
    *,
    page_size: int = 1000,
) -> Listed:
    grouper = Grouper(rules)
    links: dict[tuple[str, str], list[tuple[Link, str | None]]] = {}
    seen = pages = 0
    # The same road as ``sealcheck list``: what a paginated listing drops (SeaweedFS) is
    # re-listed, and then the complete list replaces the pages.
    for whole, versions in iter_complete_pages(client, bucket, prefix, page_size=page_size):
        if whole:
            links.clear()
            seen = len(versions)
            grouper.replace(versions)
        else:
            seen += len(versions)
            pages += 1
            grouper.add(versions)  # the Grouper leaves links and control objects out
        for v in versions:
            link = parse_link(v.key)
            if link is not None and not v.delete_marker:
                entry = (link, v.version_id)
                links.setdefault((link.key_name, link.data_version), []).append(entry)
    items: list[Item] = []
    for s in grouper.sets:
        if not s.recognised:
            continue
        live = [p for p in s.pairs if not p.data.delete_marker]
        if scope is Scope.CURRENT:
            # Each object's newest live version (a series: each night's).
            newest: dict[str, Any] = {}
            for p in live:
                newest.setdefault(p.data.key, p)
            live = list(newest.values())
        for p in live:
            items.append(
                Item(
                    data_key=p.data.key,
                    data_version=p.data.version_id or UNVERSIONED_ID,
                    key_name=p.key.key if p.key else None,
                    key_version=p.key.version_id if p.key else None,
                    step=Step.PLANNED,
                    reason=p.issue if p.key is None else None,
                )
            )
    return Listed(items, links, seen, pages)

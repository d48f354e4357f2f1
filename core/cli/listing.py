"""``sealcheck list``: the backup sets under an S3 prefix or in a local folder.

A folder is listed as a prefix is (core/storage/listing.py), with the same pairing and the same
nightly series; a series shows one line per night (per S3 version of a night in a
versioned bucket), newest night first.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..formats import NOT_A_BACKUP
from ..storage.listing import (
    BackupSet,
    Versioning,
    bucket_versioning,
    empty_text,
    list_backup_sets,
    list_folder,
    nearby_files,
    nearby_keys,
    version_text,
    versioning_warning,
)
from ..storage.locate import Locator
from ..storage.naming import Rule
from ..storage.s3.client import S3Settings, parse_uri
from .common import naming_rules, s3_settings
from .termtext import echo


def cmd_list(args: argparse.Namespace) -> int:
    return list_location(args, s3_settings(args), naming_rules(args))


def list_location(args: argparse.Namespace, settings: S3Settings, rules: tuple[Rule, ...]) -> int:
    location: str = args.location
    if location.startswith("s3://"):
        uri = parse_uri(location)
        loc = Locator(settings)
        sets = list_backup_sets(loc.client, uri.bucket, uri.key, rules)
        versioning = bucket_versioning(loc.client, uri.bucket)
        where = location
    else:
        root = Path(location)
        sets = list_folder(root, rules)
        versioning, where = Versioning.NONE, str(root)
    if args.json:
        doc: dict[str, Any] = {
            "location": location,
            "kind": "folder" if versioning is Versioning.NONE else "s3",
            "versioning": None if versioning is Versioning.NONE else versioning.value,
        }
        print(json.dumps({**doc, "backup_sets": [s.to_dict() for s in sets]}, indent=2))
        return 0
    if versioning is not Versioning.NONE:
        if warning := versioning_warning(versioning, parse_uri(location).bucket):
            echo(f"!! {warning}")
    if not sets:
        echo(_empty(location, settings))
        return 0
    for s in sets:
        _print_set(s, versioned=versioning is not Versioning.NONE)
    backups = [s for s in sets if s.recognised]
    versions = sum(len(s.pairs) for s in backups)
    echo(f"{len(backups)} backup set(s), {versions} version(s) under {where}")
    return 0


def _empty(location: str, settings: S3Settings) -> str:
    if location.startswith("s3://"):
        uri = parse_uri(location)
        near = nearby_keys(Locator(settings).client, uri.bucket, uri.key)
        where = f"The bucket {uri.bucket}" if not uri.key else location
        return empty_text(where, near, whole=not uri.key)
    root = Path(location)
    return empty_text(f"The folder {root}", nearby_files(root), whole=True)


def _print_set(s: BackupSet, *, versioned: bool) -> None:
    newest = s.newest
    when = newest.last_modified.strftime("%Y-%m-%d %H:%M:%S") if newest else "-"
    if not s.recognised:  # readme.txt, photos/cat.jpg: listed, never offered as a backup
        echo(f"{s.name}  ({NOT_A_BACKUP})")
        return
    echo(f"{s.name}")
    if s.is_series:
        nights = [p.night for p in s.pairs if p.night]
        span = f"{nights[-1]} … {nights[0]}" if nights else "-"
        echo(f"  nightly series: {len(s.members)} night(s), {span}")
    wrapped = s.key_name or "(none: single object)"
    echo(f"  wrapped key: {wrapped}   versions: {len(s.pairs)}   newest: {when}")
    if s.sidecars:  # X.sha256, X.info…: beside the backup, not backups themselves
        names = ", ".join(n.rsplit("/", 1)[-1] for n in s.sidecars[:5])
        more = f" and {len(s.sidecars) - 5} more" if len(s.sidecars) > 5 else ""
        echo(f"  sidecars: {names}{more} (verify compares the checksums and sizes they carry)")
    for pair in s.pairs:
        d = pair.data
        k = pair.key
        mark = "*" if d.is_latest else " "
        ts = d.last_modified.strftime("%Y-%m-%d %H:%M:%S")
        night = f"{pair.night:<16} " if s.is_series else ""
        kv = f"key {version_text(k.version_id)}" if k else ("" if not s.key_name else "key -")
        issue = f"  !! {pair.issue}" if pair.issue else ""
        # A file has no versions: its column would read "(unversioned)" on every line.
        vid = f"{version_text(d.version_id):<36} " if versioned else ""
        echo(f"   {mark} {night}{ts}  {vid}{d.size:>12}  {kv}{issue}".rstrip())
    for o in s.orphan_keys:
        vid = version_text(o.version_id)
        echo(f"   ! orphan key version {vid} of {o.key} ({o.last_modified:%Y-%m-%d %H:%M:%S})")
    for issue in s.issues:
        echo(f"  !! {issue}")

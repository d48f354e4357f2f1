"""The rotation report: every version, what was proved and written (never a secret)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..keys.base import KeySource
from ..version import __version__
from .engine import NOT_REVOCATION, Outcome, Settings
from .journal import Item, now_iso


def _version(item: Item) -> dict[str, Any]:
    return {
        "data_object": item.data_key,
        "data_version_id": item.data_version,
        "old_key_object": item.key_name,
        "old_key_version_id": item.key_version,
        "new_key_object": item.link_name,
        "new_key_version_id": item.new_version,
        "result": item.step.value,
        "reason": item.reason,
        "opened_with": item.old_key,
        "old_key_fingerprint": item.old_fingerprint,
        "padding": item.padding,
        "wire_format": item.wire,
        "wrapped_sha256_before": item.old_sha256,
        "wrapped_sha256_after": item.new_sha256,
        "seconds": item.seconds,
        # gpg: the new object is the original with the new recipient packet in front;
        # the "wrapped" digests are of the original's packets and of the new packet.
        "envelope": item.envelope,
        "data_size": item.data_size,
        "body_bytes_copied_in_store": item.copied,
    }


def build(
    operation: str,
    settings: Settings,
    outcome: Outcome,
    old_keys: Sequence[KeySource],
    *,
    started: str,
    journal: str | None = None,
) -> dict[str, Any]:
    new = settings.new
    return {
        "report": "sealcheck key rotation",
        "operation": operation,
        "sealcheck_version": __version__,
        "source": f"s3://{settings.bucket}/{settings.prefix}",
        "scope": settings.scope.value,
        "started_at": started,
        "finished_at": now_iso(),
        "journal": journal,
        "versioning": outcome.versioning.value if outcome.versioning else None,
        "new_key": {
            "label": new.label,
            "spki_sha256": new.fingerprint,
            "bits": new.bits,
            "private_half": "held" if new.private is not None else "offline (--public-only)",
            "proof_of_possession": outcome.proof,
        },
        "old_keys": [{"label": k.label, "spki_sha256": k.fingerprint} for k in old_keys],
        "padding": settings.padding or "kept as each original",
        "not_revocation": NOT_REVOCATION,
        "counts": outcome.counts(),
        "complete": outcome.complete,
        "warnings": outcome.warnings,
        "versions": [_version(i) for i in outcome.items],
    }

"""Every detected format has one home: a layer's registry reads it, or a registry
lists it as recognised but not read yet. A new Fmt member fails here until it
is given one, so a format cannot be detected and then silently passed through."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fixtures.adversarial import assert_failed, run_job
from fixtures.dumps import mysql_like
from fixtures.pipelines import sh
from sealcheck.core.decompress import registry as decompress
from sealcheck.core.decrypt import registry as decrypt
from sealcheck.core.formats import COMPRESSED, ENCRYPTED, Fmt
from sealcheck.core.payload import registry as payload
from sealcheck.core.records.report import Status

HOMES = {
    "decrypt": set(decrypt.OPENERS),
    "decrypt (not supported)": set(decrypt.UNSUPPORTED),
    "decompress": set(decompress.READERS),
    "decompress (not supported)": set(decompress.UNSUPPORTED),
    "payload": set(payload.CHECKS) | set(payload.TEXT),
    "payload (not judged)": set(payload.NOT_JUDGED),
}


def test_every_format_has_exactly_one_home() -> None:
    homes = Counter(fmt for formats in HOMES.values() for fmt in formats)
    assert {f for f in Fmt if homes[f] == 0} == set(), "formats no registry handles"
    assert {f for f in Fmt if homes[f] > 1} == set(), "formats in more than one registry"


def test_each_layer_holds_its_own_kind_of_format() -> None:
    assert HOMES["decrypt"] | HOMES["decrypt (not supported)"] == ENCRYPTED
    assert HOMES["decompress"] | HOMES["decompress (not supported)"] == COMPRESSED


def test_a_compression_recognised_but_not_read_fails_naming_it(tmp_path: Path) -> None:
    """An entry in a registry's unsupported list is a typed failure of its layer,
    not a pass-through: ``lz4 | openssl enc``, made by the real tools."""
    dump = mysql_like(tmp_path / "db.sql")
    data = tmp_path / "db.sql.lz4.enc"
    sh(f"lz4 -c {dump} | openssl enc -aes-256-cbc -pbkdf2 -pass pass:pw > {data}", tmp_path)
    err = assert_failed(
        run_job(data, passphrase=b"pw"), obj=data, layer="decompress", kind="UnsupportedFormat"
    )
    assert "lz4 compression is not supported yet" in err["message"], err


def test_a_payload_recognised_but_not_read_is_not_judged(tmp_path: Path) -> None:
    """A zip (``zip | gzip``): every layer above proved, the payload not judged."""
    dump = mysql_like(tmp_path / "db.sql")
    data = tmp_path / "db.zip.gz"
    sh(f"zip -q - {dump.name} | gzip > {data}", tmp_path)
    rep = run_job(data)
    assert rep.ok, rep.error
    payload = next(x for x in rep.layers if x.layer == "payload")
    assert payload.status is Status.WARNING and payload.details["checked"] is False

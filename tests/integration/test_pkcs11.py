"""Backups made by the seed pipelines, unwrapped by keys on a real SoftHSM2 token.

Verified in-process through ``pipeline.run``. Only the "token unplugged" fault is
injected with a fake (a session/decrypt raising ``pkcs11.DeviceRemoved``); all
else is the real module, real tokens and real ``openssl`` output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pkcs11
import pytest

from fixtures.pipelines import openssl_variant, rds_postgres, securecircle
from fixtures.softhsm import SoftHsm, TokenKeySpec
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.errors import ExitCode, KeyUnavailable, UsageError
from sealcheck.core.keys.base import spki_fingerprint
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.keys.pkcs11.inventory import list_token_keys, list_tokens
from sealcheck.core.keys.pkcs11.key import Pkcs11Key, TokenUnwrapped, open_pkcs11_key
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.records.report import Report
from sealcheck.core.storage.source import LocalFile


class CountingPin:
    """A pin_provider that counts how often it is asked."""

    def __init__(self, pin: str | None) -> None:
        self.pin = pin
        self.calls = 0

    def __call__(self) -> bytes | None:
        self.calls += 1
        return None if self.pin is None else self.pin.encode()


@pytest.fixture
def open_key(softhsm: SoftHsm) -> Iterator[Callable[..., Pkcs11Key]]:
    """Open token keys; every one is closed (logged out) after the test."""
    opened: list[Pkcs11Key] = []

    def make(uri: str, **kw: Any) -> Pkcs11Key:
        kw.setdefault("module", softhsm.module)
        k = open_pkcs11_key(uri, **kw)
        opened.append(k)
        return k

    yield make
    for k in opened:
        k.close()


def verify(data: Path, wrapped: Path | None, key: Pkcs11Key) -> Report:
    return run(
        Job(
            data=LocalFile(data),
            wrapped_key=LocalFile(wrapped) if wrapped else None,
            secrets=Secrets(keys=[key]),
        )
    )


def key_layer(rep: Report) -> dict:
    layer = rep.layer("key")
    assert layer is not None
    return layer.details


def pem_fingerprint(spec: TokenKeySpec) -> str:
    if spec.private is not None:
        return PemKey.from_file(spec.private).fingerprint
    from cryptography.hazmat.primitives import serialization

    pub = serialization.load_pem_public_key(spec.public.read_bytes())
    return spki_fingerprint(pub)  # type: ignore[arg-type]


# --- the seed pipelines --------------------------------------------------------------


def test_securecircle_rsautl_v15(
    tmp_path: Path, small_dump: Path, softhsm: SoftHsm, open_key
) -> None:
    spec = softhsm.keys["rsakey"]
    b = securecircle(small_dump, tmp_path / "s3", spec.rsa)
    pin = CountingPin(softhsm.pin)
    key = open_key(spec.uri(), pin_provider=pin)
    rep = verify(b.data, b.wrapped_key, key)
    assert rep.ok, rep.to_json()
    assert rep.exit_code == 0
    d = key_layer(rep)
    assert d["key"] == "PKCS#11 token 'backup' key 'rsakey'"
    assert d["padding"] == "PKCS#1 v1.5"
    assert d["fingerprint"] == pem_fingerprint(spec)
    assert key.mechanisms["PKCS#1 v1.5"] == "CKM_RSA_PKCS"
    assert rep.formats == ("openssl-enc", "gzip", "mysql-sql")
    assert pin.calls == 1


def test_rds_postgres_oaep_sha256_via_x509_fallback(
    tmp_path: Path, small_dump: Path, softhsm: SoftHsm, open_key
) -> None:
    spec = softhsm.keys["rsakey"]
    b = rds_postgres(small_dump, tmp_path / "s3", spec.rsa, wrap="oaep-sha256")
    key = open_key(spec.uri(by="id"), pin_provider=CountingPin(softhsm.pin))
    rep = verify(b.data, b.wrapped_key, key)
    assert rep.ok, rep.to_json()
    d = key_layer(rep)
    assert d["padding"] == "OAEP-SHA256"
    assert d["key"] == "PKCS#11 token 'backup' key 'rsakey'"
    # SoftHSM 2.6.1 refuses OAEP with SHA-256 (CKR_ARGUMENTS_BAD): raw RSA + software OAEP.
    how = key.mechanisms["OAEP-SHA256"]
    assert how.startswith("CKM_RSA_X_509 + software EME-OAEP"), how
    assert "ArgumentsBad" in how
    cands = list(key.unwrap_candidates(b.wrapped_key.read_bytes()))  # type: ignore[union-attr]
    try:
        # OAEP-SHA256 first; a PKCS#1 v1.5 candidate may follow now and then: under
        # implicit rejection (formats.md §3.1) the token answers v1.5 with garbage of a
        # random length instead of an error, which the data's confirmation rejects
        # (the verify above opened it with OAEP-SHA256).
        assert cands[0].padding == "OAEP-SHA256"
        assert all(c.padding == "PKCS#1 v1.5" for c in cands[1:]), [c.padding for c in cands]
        assert isinstance(cands[0], TokenUnwrapped)
        assert cands[0].mechanism.startswith("CKM_RSA_X_509")
    finally:
        for c in cands:
            c.secret[:] = bytes(len(c.secret))


@pytest.mark.parametrize(
    ("wrap", "padding", "mechanism"),
    [
        ("oaep-sha1", "OAEP-SHA1", "CKM_RSA_PKCS_OAEP"),
        ("oaep-sha256-mgf1-sha1", "OAEP-SHA256/MGF1-SHA1", "CKM_RSA_X_509 + software EME-OAEP"),
    ],
)
def test_openssl_variant_oaep(
    tmp_path: Path, small_dump: Path, softhsm: SoftHsm, open_key, wrap, padding, mechanism
) -> None:
    spec = softhsm.keys["rsakey"]
    b = openssl_variant(small_dump, tmp_path / "s3", key=spec.rsa, wrap=wrap)
    key = open_key(spec.uri(), pin_provider=CountingPin(softhsm.pin))
    rep = verify(b.data, b.wrapped_key, key)
    assert rep.ok, rep.to_json()
    assert key_layer(rep)["padding"] == padding
    assert key.mechanisms[padding].startswith(mechanism)


@pytest.mark.parametrize("name", ["rsakey", "rsa3072", "rsa4096", "genkey"])
@pytest.mark.parametrize("wrap", ["rsautl", "oaep-sha256"])
def test_key_sizes_and_generated_key(
    tmp_path: Path, small_dump: Path, softhsm: SoftHsm, open_key, name: str, wrap: str
) -> None:
    spec = softhsm.keys[name]
    b = openssl_variant(small_dump, tmp_path / "s3", key=spec.rsa, wrap=wrap)
    key = open_key(spec.uri(), pin_provider=CountingPin(softhsm.pin))
    assert key.modulus_bytes * 8 == spec.bits
    assert key.fingerprint == pem_fingerprint(spec)
    rep = verify(b.data, b.wrapped_key, key)
    assert rep.ok, rep.to_json()
    d = key_layer(rep)
    assert d["padding"] == ("PKCS#1 v1.5" if wrap == "rsautl" else "OAEP-SHA256")
    assert d["key"] == f"PKCS#11 token 'backup' key '{name}'"
    assert d["fingerprint"] == pem_fingerprint(spec)


def test_wrong_key_size_is_reported_not_tried(
    tmp_path: Path, small_dump: Path, softhsm: SoftHsm, open_key
) -> None:
    b = securecircle(small_dump, tmp_path / "s3", softhsm.keys["rsa3072"].rsa)
    pin = CountingPin(softhsm.pin)
    rep = verify(b.data, b.wrapped_key, open_key(softhsm.keys["rsakey"].uri(), pin_provider=pin))
    assert not rep.ok
    assert rep.error is not None and rep.error.kind == "WrongKey"
    assert pin.calls == 0  # the public key told the size: no login was needed


# --- fingerprints and listing ------------------------------------------------------------


def test_fingerprints_match_pem_and_listing(softhsm: SoftHsm, open_key) -> None:
    rows = list_token_keys(softhsm.module)  # no PIN: public-key objects stand in
    by_name = {(r.token_label, r.object_label): r for r in rows}
    for name in ("rsakey", "rsa3072", "rsa4096", "genkey", "signonly"):
        spec = softhsm.keys[name]
        row = by_name[("backup", name)]
        assert row.fingerprint == pem_fingerprint(spec)
        assert row.size_bits == spec.bits
        assert row.id_hex == spec.key_id.hex()
        assert row.key_type == "RSA"
        assert row.can_decrypt is None  # private keys hidden before login
        # The listed URI opens the same key (module-path included).
        k = open_key(row.uri, module=None)
        assert k.fingerprint == row.fingerprint
    assert ("pintest", "rsakey") in by_name
    # With the PIN for 'backup' its private keys show, and the signing-only key is flagged.
    pin = CountingPin(softhsm.pin)
    rows = list_token_keys(softhsm.module, pin, pin_for="backup")
    assert pin.calls == 1
    flags = {(r.token_label, r.object_label): r.can_decrypt for r in rows}
    assert flags[("backup", "signonly")] is False
    assert flags[("backup", "rsakey")] is True
    assert flags[("pintest", "rsakey")] is None  # the PIN was for 'backup' only
    assert json.dumps([r.__dict__ for r in rows])  # plain data for --json


def test_listing_tries_a_pin_on_one_token_only(softhsm: SoftHsm) -> None:
    """Two tokens (both PIN 123456 here): without pin_for the PIN is tried on neither;
    with it, on the named token only. Several tokens with other PINs: test_pkcs11_list.py."""
    pin = CountingPin(softhsm.pin)
    listings = {t.label: t for t in list_tokens(softhsm.module, pin)}
    assert pin.calls == 0
    assert {"backup", "pintest"} <= set(listings)
    for t in listings.values():
        assert not t.logged_in
        assert t.note is not None and t.note.startswith(f"PIN not tried on token {t.label!r}")
        assert all(k.has_private is None for k in t.keys)
    listings = {
        t.label: t
        for t in list_tokens(softhsm.module, pin, pin_for="pkcs11:token=backup;object=rsakey")
    }
    assert pin.calls == 1
    assert listings["backup"].logged_in and listings["backup"].note is None
    assert all(k.has_private for k in listings["backup"].keys)
    assert not listings["pintest"].logged_in
    assert listings["pintest"].note == (
        "PIN not tried on token 'pintest' (the PIN was given for token 'backup' only): "
        "private keys not listed"
    )
    with pytest.raises(KeyUnavailable, match="no PKCS#11 token with label 'nosuch'"):
        list_tokens(softhsm.module, pin, pin_for="nosuch")
    assert pin.calls == 1


# --- PINs ---------------------------------------------------------------------------------


def test_wrong_pin_once_not_retried_and_token_not_locked(
    tmp_path: Path, small_dump: Path, softhsm: SoftHsm, open_key
) -> None:
    spec = softhsm.keys["pintest"]
    b = securecircle(small_dump, tmp_path / "s3", spec.rsa)
    wrong = CountingPin("999999")
    key = open_key(spec.uri(), pin_provider=wrong)
    assert wrong.calls == 0  # the public key is visible without login
    rep = verify(b.data, b.wrapped_key, key)
    assert not rep.ok
    assert rep.error is not None
    assert rep.error.kind == "KeyUnavailable"
    assert rep.error.exit_code == ExitCode.USAGE
    assert "wrong PIN" in rep.error.message
    assert "999999" not in rep.to_json()
    assert wrong.calls == 1
    # Again with the same key object, and with a new one on the same provider: refused
    # without submitting the PIN again (the token's retry counter is not touched).
    rep = verify(b.data, b.wrapped_key, key)
    assert rep.error is not None and "wrong PIN" in rep.error.message
    key2 = open_key(spec.uri(), pin_provider=wrong)
    with pytest.raises(KeyUnavailable, match="wrong PIN"):
        list(key2.unwrap_candidates(b.wrapped_key.read_bytes()))  # type: ignore[union-attr]
    assert wrong.calls == 1
    # Nor does a listing aimed at that token: its public keys, and a note.
    listed = {t.label: t for t in list_tokens(softhsm.module, wrong, pin_for="pintest")}["pintest"]
    assert not listed.logged_in and listed.note is not None
    assert listed.note.startswith("PIN not accepted for token 'pintest'")
    assert [k.object_label for k in listed.keys] == ["rsakey"]
    assert wrong.calls == 1
    # The token is not locked: the right PIN works.
    tok = pkcs11.lib(softhsm.module).get_token(token_label="pintest")
    assert not tok.flags & pkcs11.TokenFlag.USER_PIN_LOCKED
    right = CountingPin(softhsm.pin)
    rep = verify(b.data, b.wrapped_key, open_key(spec.uri(), pin_provider=right))
    assert rep.ok, rep.to_json()
    assert right.calls == 1


def test_pin_asked_once_per_key_across_runs(
    tmp_path: Path, small_dump: Path, softhsm: SoftHsm, open_key
) -> None:
    spec = softhsm.keys["rsakey"]
    b1 = securecircle(small_dump, tmp_path / "a", spec.rsa)
    b2 = openssl_variant(small_dump, tmp_path / "b", key=spec.rsa, wrap="oaep-sha256")
    pin = CountingPin(softhsm.pin)
    key = open_key(spec.uri(), pin_provider=pin)
    assert verify(b1.data, b1.wrapped_key, key).ok
    assert verify(b2.data, b2.wrapped_key, key).ok
    assert pin.calls == 1
    # After close() the login is gone; the next use logs in (asks) anew.
    key.close()
    assert verify(b1.data, b1.wrapped_key, key).ok
    assert pin.calls == 2


def test_no_pin_available(tmp_path: Path, small_dump: Path, softhsm: SoftHsm, open_key) -> None:
    spec = softhsm.keys["pintest"]
    b = securecircle(small_dump, tmp_path / "s3", spec.rsa)
    for provider in (None, CountingPin(None)):
        rep = verify(b.data, b.wrapped_key, open_key(spec.uri(), pin_provider=provider))
        assert rep.error is not None and rep.error.kind == "KeyUnavailable"
        assert "needs its PIN" in rep.error.message
        assert "--pin-file" in rep.error.message


def test_pin_source_in_uri(tmp_path: Path, small_dump: Path, softhsm: SoftHsm, open_key) -> None:
    spec = softhsm.keys["rsakey"]
    b = securecircle(small_dump, tmp_path / "s3", spec.rsa)
    pf = softhsm.pin_file(tmp_path)
    key = open_key(spec.uri() + f"?pin-source=file:{pf}")
    assert verify(b.data, b.wrapped_key, key).ok


# --- lookups ------------------------------------------------------------------------------


def test_wrong_token_label(softhsm: SoftHsm, open_key) -> None:
    with pytest.raises(KeyUnavailable) as ei:
        open_key(softhsm.keys["rsakey"].uri(token="nosuchtoken"))
    msg = str(ei.value)
    assert "label 'nosuchtoken'" in msg
    assert "'backup'" in msg and "'pintest'" in msg
    assert ei.value.exit_code == ExitCode.USAGE


def test_no_such_object(softhsm: SoftHsm, open_key) -> None:
    with pytest.raises(KeyUnavailable) as ei:
        open_key("pkcs11:token=backup;object=nokey", pin_provider=CountingPin(softhsm.pin))
    msg = str(ei.value)
    assert "label 'nokey'" in msg
    for name in ("rsakey", "rsa3072", "genkey"):
        assert f"'{name}'" in msg
    with pytest.raises(KeyUnavailable, match="id 7f"):
        open_key("pkcs11:token=backup;id=%7f")
    with pytest.raises(KeyUnavailable, match="several RSA keys"):
        open_key("pkcs11:token=backup")


def test_missing_module_path(tmp_path: Path, softhsm: SoftHsm) -> None:
    with pytest.raises(KeyUnavailable, match="no PKCS#11 module at") as ei:
        open_pkcs11_key("pkcs11:token=backup;object=rsakey", module=str(tmp_path / "missing.so"))
    assert ei.value.exit_code == ExitCode.USAGE
    with pytest.raises(KeyUnavailable, match="module-path"):
        open_pkcs11_key(f"pkcs11:token=backup;object=rsakey?module-path={tmp_path}/x.so")
    not_a_module = tmp_path / "fake.so"
    not_a_module.write_bytes(b"not an ELF")
    with pytest.raises(KeyUnavailable, match="cannot load the PKCS#11 module"):
        open_pkcs11_key("pkcs11:token=backup", module=str(not_a_module))
    with pytest.raises(KeyUnavailable, match="no PKCS#11 module found"):
        Pkcs11Key("pkcs11:token=backup", module_candidates=[str(tmp_path / "none.so")])


def test_malformed_uri_is_usage_error(softhsm: SoftHsm) -> None:
    with pytest.raises(UsageError):
        open_pkcs11_key("pkcs11:token=backup;object=%zz", module=softhsm.module)


def test_key_without_decrypt(tmp_path: Path, small_dump: Path, softhsm: SoftHsm, open_key) -> None:
    spec = softhsm.keys["signonly"]
    b = securecircle(small_dump, tmp_path / "s3", spec.rsa)
    rep = verify(b.data, b.wrapped_key, open_key(spec.uri(), pin_provider=CountingPin(softhsm.pin)))
    assert rep.error is not None
    assert rep.error.kind == "KeyNotUsable"  # a KeyUnavailable: exit 2
    assert "CKA_DECRYPT" in rep.error.message
    assert rep.exit_code == ExitCode.USAGE


# --- the token unplugged mid-operation (the only fake) ------------------------------------


def test_token_removed_mid_unwrap(
    tmp_path: Path, small_dump: Path, softhsm: SoftHsm, open_key, monkeypatch
) -> None:
    spec = softhsm.keys["rsakey"]
    b = rds_postgres(small_dump, tmp_path / "s3", spec.rsa, wrap="oaep-sha256")
    pin = CountingPin(softhsm.pin)
    key = open_key(spec.uri(), pin_provider=pin)
    real = Pkcs11Key._decrypt
    calls = {"n": 0}

    def flaky(self: Pkcs11Key, k: Any, data: bytes, mech: Any, param: Any = None) -> bytes:
        calls["n"] += 1
        if calls["n"] == 2:  # the raw-RSA fallback, after OAEP-SHA256 was refused
            raise pkcs11.DeviceRemoved()
        return real(self, k, data, mech, param)

    monkeypatch.setattr(Pkcs11Key, "_decrypt", flaky)
    rep = verify(b.data, b.wrapped_key, key)
    assert not rep.ok
    assert rep.error is not None
    assert rep.error.kind == "KeyUnavailable"
    assert "removed" in rep.error.message and "DeviceRemoved" in rep.error.message
    assert "Traceback" not in rep.to_json()
    # Re-inserted: the same key object opens a new session and works.
    monkeypatch.setattr(Pkcs11Key, "_decrypt", real)
    rep = verify(b.data, b.wrapped_key, key)
    assert rep.ok, rep.to_json()


class _RemovedSession:
    """A session whose token is gone: every call raises DeviceRemoved."""

    def __getattr__(self, name: str) -> Any:
        def gone(*_a: Any, **_k: Any) -> Any:
            raise pkcs11.DeviceRemoved()

        return gone


@pytest.mark.parametrize(
    "exc", [pkcs11.DeviceRemoved, pkcs11.TokenNotPresent, pkcs11.SessionClosed]
)
def test_token_removed_during_lookup(
    tmp_path: Path, small_dump: Path, softhsm: SoftHsm, open_key, exc
) -> None:
    spec = softhsm.keys["rsakey"]
    b = securecircle(small_dump, tmp_path / "s3", spec.rsa)
    key = open_key(spec.uri(), pin_provider=CountingPin(softhsm.pin))

    class Gone(_RemovedSession):
        def __getattr__(self, name: str) -> Any:
            def gone(*_a: Any, **_k: Any) -> Any:
                raise exc()

            return gone

    real_session = key._box.session
    key._box.session = Gone()
    try:
        rep = verify(b.data, b.wrapped_key, key)
    finally:
        real_session.close()
    assert rep.error is not None and rep.error.kind == "KeyUnavailable"
    assert "removed or stopped responding" in rep.error.message
    assert exc.__name__ in rep.error.message


# --- through the CLI (the lead's --key/--pkcs11-module/--pin-file wiring) -------------------


def test_cli_verify_with_token_key(tmp_path: Path, small_dump: Path, softhsm: SoftHsm) -> None:
    from fixtures.common import run_cli

    spec = softhsm.keys["rsakey"]
    b = rds_postgres(small_dump, tmp_path / "s3", spec.rsa, wrap="oaep-sha256")
    pf = softhsm.pin_file(tmp_path)
    args = ["verify", str(b.data), "--key", spec.uri(), "--pkcs11-module", softhsm.module]
    r = run_cli(*args, "--pin-file", str(pf), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    key = next(x for x in rep["layers"] if x["layer"] == "key")["details"]
    assert key["padding"] == "OAEP-SHA256"
    assert key["fingerprint"] == pem_fingerprint(spec)
    bad = softhsm.pin_file(tmp_path / "s3", "000000")
    bad_args = [*args[:3], softhsm.keys["pintest"].uri(), *args[4:]]
    r = run_cli(*bad_args, "--pin-file", str(bad), "--json")
    assert r.returncode == 2
    assert "wrong PIN" in r.stdout and "000000" not in r.stdout + r.stderr
    r = run_cli(*args[:-1], str(tmp_path / "missing.so"))
    assert r.returncode == 2
    assert "no PKCS#11 module at" in r.stdout + r.stderr

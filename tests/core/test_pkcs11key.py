"""pkcs11: URIs, module search and the RFC 8017 decoders, without a token."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sealcheck.core.errors import ExitCode, KeyUnavailable, UsageError
from sealcheck.core.keys.pem import OAEP_VARIANTS
from sealcheck.core.keys.pkcs11.key import (
    build_uri,
    eme_oaep_decode,
    eme_pkcs1_v15_decode,
    find_module,
    parse_uri,
)

# --- URIs --------------------------------------------------------------------------


def test_parse_full_uri() -> None:
    u = parse_uri(
        "pkcs11:token=My%20Token;object=rsa%3Bkey;id=%01%02;type=private;serial=0123abc;"
        "manufacturer=SoftHSM%20project;model=SoftHSM%20v2"
        "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin"
    )
    assert u.token == "My Token"
    assert u.object == "rsa;key"
    assert u.id == b"\x01\x02"
    assert u.type == "private"
    assert u.serial == "0123abc"
    assert u.manufacturer == "SoftHSM project"
    assert u.model == "SoftHSM v2"
    assert u.module_path == "/usr/lib/softhsm/libsofthsm2.so"
    assert u.pin_source == Path("/run/pin")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("pkcs11:", {}),
        ("pkcs11:object=k;", {"object": "k"}),
        ("PKCS11:object=k", {"object": "k"}),
        ("pkcs11:id=%ff", {"id": b"\xff"}),
        ("pkcs11:id=01", {"id": b"01"}),  # RFC 7512: the id is percent-encoded bytes
        ("pkcs11:slot-id=7", {"slot_id": 7}),
        ("pkcs11:object=caf%C3%A9", {"object": "café"}),
        ("pkcs11:object=k;x-vendor=1", {"object": "k"}),
        ("pkcs11:object=k?pin-source=file:///etc/pin", {"pin_source": Path("/etc/pin")}),
        ("pkcs11:object=k?pin-source=/etc/pin", {"pin_source": Path("/etc/pin")}),
        ("pkcs11:object=k?module-name=softhsm2", {"module_name": "softhsm2"}),
    ],
)
def test_parse_variants(text: str, want: dict) -> None:
    u = parse_uri(text)
    for k, v in want.items():
        assert getattr(u, k) == v


@pytest.mark.parametrize(
    "text",
    [
        "pkcs12:object=k",
        "object=k",
        "pkcs11:object",
        "pkcs11:object=k;object=j",
        "pkcs11:object=%zz",
        "pkcs11:object=%4",
        "pkcs11:id=%GG",
        "pkcs11:id=",
        "pkcs11:object=%ff%fe",  # not UTF-8
        "pkcs11:bogus=1",
        "pkcs11:type=secret-key",
        "pkcs11:type=weird",
        "pkcs11:slot-id=abc",
        "pkcs11:object=k?unknown=1",
        "pkcs11:object=k?module-path",
        "pkcs11:object=k?pin-source=%7C/bin/pin",
        "pkcs11:object=k?pin-source=|/bin/pin",
        "pkcs11:object=k?pin-source=file://remote/etc/pin",
        "pkcs11:object=k#frag",
    ],
)
def test_malformed_uris_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as ei:
        parse_uri(text)
    assert ei.value.exit_code == ExitCode.USAGE


def test_pin_value_is_refused_without_echo() -> None:
    with pytest.raises(UsageError) as ei:
        parse_uri("pkcs11:object=k?pin-value=S3cr3tPIN")
    assert "S3cr3tPIN" not in str(ei.value)
    assert "pin-source" in str(ei.value)


def test_build_uri_roundtrip() -> None:
    uri = build_uri(
        token="back up;1", serial="ab12", object_label="my key", key_id=b"\x00\xff",
        module_path="/opt/x y/lib.so",
    )  # fmt: skip
    u = parse_uri(uri)
    assert (u.token, u.serial, u.object, u.id, u.type, u.module_path) == (
        "back up;1", "ab12", "my key", b"\x00\xff", "private", "/opt/x y/lib.so",
    )  # fmt: skip


# --- modules -----------------------------------------------------------------------


def test_module_search_order(tmp_path: Path) -> None:
    a, b, c = (
        tmp_path / "opensc-pkcs11.so",
        tmp_path / "libykcs11.so.2",
        tmp_path / "libsofthsm2.so",
    )
    cands = [str(a), str(b), str(c)]
    with pytest.raises(KeyUnavailable) as ei:
        find_module(None, None, cands)
    assert ei.value.exit_code == ExitCode.USAGE
    assert "--pkcs11-module" in str(ei.value)
    c.write_bytes(b"")
    b.write_bytes(b"")
    assert find_module(None, None, cands) == str(b)
    a.write_bytes(b"")
    assert find_module(None, None, cands) == str(a)
    # The URI's module-path wins over the search; --pkcs11-module wins over both.
    assert find_module(None, parse_uri(f"pkcs11:?module-path={c}"), cands) == str(c)
    assert find_module(str(b), parse_uri(f"pkcs11:?module-path={c}"), cands) == str(b)
    assert find_module(None, parse_uri("pkcs11:?module-name=softhsm2"), cands) == str(c)


def test_missing_explicit_module(tmp_path: Path) -> None:
    missing = tmp_path / "nope.so"
    with pytest.raises(KeyUnavailable, match=r"no PKCS#11 module at .*nope\.so"):
        find_module(str(missing))
    with pytest.raises(KeyUnavailable, match="module-path"):
        find_module(None, parse_uri(f"pkcs11:?module-path={missing}"))


# --- RFC 8017 decoders --------------------------------------------------------------


@pytest.fixture(scope="module")
def key2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _raw(key: rsa.RSAPrivateKey, ct: bytes) -> bytes:
    """What CKM_RSA_X_509 returns: c^d mod n, big-endian, k bytes."""
    n = key.private_numbers().public_numbers.n
    d = key.private_numbers().d
    k = (key.key_size + 7) // 8
    return pow(int.from_bytes(ct, "big"), d, n).to_bytes(k, "big")


HASHES = {
    "OAEP-SHA256": ("sha256", "sha256"),
    "OAEP-SHA1": ("sha1", "sha1"),
    "OAEP-SHA256/MGF1-SHA1": ("sha256", "sha1"),
}


@pytest.mark.parametrize("name", [n for n, _ in OAEP_VARIANTS])
def test_eme_oaep_decode_matches_cryptography(key2048: rsa.RSAPrivateKey, name: str) -> None:
    pad = dict(OAEP_VARIANTS)[name]
    msg = os.urandom(44)
    ct = key2048.public_key().encrypt(msg, pad)
    raw = _raw(key2048, ct)
    h, mgf = HASHES[name]
    assert bytes(eme_oaep_decode(raw, 256, h, mgf) or b"") == msg
    # Tokens may strip the leading zero byte(s): left-padding restores them.
    assert bytes(eme_oaep_decode(raw.lstrip(b"\0"), 256, h, mgf) or b"") == msg
    # Any other variant does not decode it.
    for other, (h2, m2) in HASHES.items():
        if other != name:
            assert eme_oaep_decode(raw, 256, h2, m2) is None
    assert eme_pkcs1_v15_decode(raw, 256) is None


def test_eme_pkcs1_v15_decode(key2048: rsa.RSAPrivateKey) -> None:
    msg = b"secret\n"
    ct = key2048.public_key().encrypt(msg, padding.PKCS1v15())
    raw = _raw(key2048, ct)
    assert bytes(eme_pkcs1_v15_decode(raw, 256) or b"") == msg
    assert bytes(eme_pkcs1_v15_decode(raw.lstrip(b"\0"), 256) or b"") == msg
    assert eme_oaep_decode(raw, 256, "sha1", "sha1") is None


def test_decoders_reject_malformed() -> None:
    k = 256
    assert eme_pkcs1_v15_decode(b"\x00\x02" + b"\x01" * 7 + b"\x00" + b"m" * 247, k) is None
    assert eme_pkcs1_v15_decode(b"\x00\x02" + b"\x01" * 254, k) is None  # no separator
    assert eme_pkcs1_v15_decode(b"\x00\x01" + b"\xff" * 8 + b"\x00" + b"m" * 246, k) is None
    assert eme_pkcs1_v15_decode(b"\x00" * 257, k) is None
    assert eme_oaep_decode(b"\x01" + b"\x00" * 255, k, "sha256", "sha256") is None
    assert eme_oaep_decode(b"\x00" * 257, k, "sha256", "sha256") is None
    assert eme_oaep_decode(b"\x00" * 64, 64, "sha256", "sha256") is None  # k < 2hLen + 2
    ok = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    ct = ok.public_key().encrypt(
        b"x", padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), b"label")
    )
    raw = _raw(ok, ct)
    assert eme_oaep_decode(raw, 128, "sha256", "sha256") is None  # wrong label
    assert bytes(eme_oaep_decode(raw, 128, "sha256", "sha256", b"label") or b"") == b"x"

"""Adversarial key cases B1-B4, B6 and A9 (reliability.md §2.1) on local files.

RSA-wrapped openssl enc backups record neither the key nor the KDF, so the
data is the only judge of a key (formats.md §3.1): with PKCS#1 v1.5 a damaged
wrapped key or the wrong private key returns garbage rather than an error
(implicit rejection). Every such case must end as one uniform WrongKey
(exit 1, layer "key"), never as a late decompression error, and never write
anything. A wrong-key verdict runs the full key-derivation search (~3-5 s),
so the multi-position variants are marked slow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.adversarial import (
    Seed,
    SpyKey,
    assert_failed,
    assert_nothing_written,
    cli_json,
    flip,
    run_job,
)
from fixtures.common import run_cli
from fixtures.dumps import mysql_like
from fixtures.pipelines import RsaKey, make_rsa_key, openssl_variant, securecircle
from sealcheck.core.keys.pem import PemKey

MODULUS = 256  # RSA-2048


@pytest.fixture(scope="module")
def pem(rsa_key: RsaKey) -> PemKey:
    return PemKey.from_file(rsa_key.private)


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mysql_like(tmp_path_factory.mktemp("dump") / "dump.sql", rows=60)


@pytest.fixture(scope="module")
def oaep_a(tmp_path_factory: pytest.TempPathFactory, rsa_key: RsaKey, dump: Path) -> Seed:
    b = openssl_variant(dump, tmp_path_factory.mktemp("a"), key=rsa_key, wrap="oaep-sha256")
    return Seed(b.data, b.wrapped_key, dump.read_bytes())


@pytest.fixture(scope="module")
def oaep_b(tmp_path_factory: pytest.TempPathFactory, rsa_key: RsaKey, dump: Path) -> Seed:
    b = openssl_variant(dump, tmp_path_factory.mktemp("b"), key=rsa_key, wrap="oaep-sha256")
    return Seed(b.data, b.wrapped_key, dump.read_bytes())


@pytest.fixture(scope="module")
def pkcs1(tmp_path_factory: pytest.TempPathFactory, rsa_key: RsaKey, dump: Path) -> Seed:
    b = securecircle(dump, tmp_path_factory.mktemp("sc"), rsa_key)
    return Seed(b.data, b.wrapped_key, dump.read_bytes())


def _with_wrapped(tmp_path: Path, seed: Seed, wrapped: bytes) -> Path:
    """A copy of the data object with a different wrapped key beside it."""
    p = tmp_path / "wk.key"
    p.write_bytes(wrapped)
    return p


def _assert_wrong_key(rep, obj: Path, dest: Path) -> dict:  # type: ignore[no-untyped-def]
    err = assert_failed(rep, obj=obj, layer="key", kind="WrongKey")
    # Never a late error: nothing after the key layer ran.
    for later in ("cipher", "decompress", "payload"):
        assert rep.layer(later).status.value == "not reached", rep.layer(later)
    assert_nothing_written(dest)
    return err


# --- B1: malformed wrapped-key objects ---------------------------------------------


@pytest.mark.parametrize(
    ("size", "words"),
    [
        (0, "it is empty"),
        (1, "it is 1 bytes, which is no RSA key size"),
        (MODULUS - 1, "exactly 256 bytes"),
        (MODULUS + 1, "exactly 256 bytes"),
        (10 << 20, "too large for a wrapped key"),
    ],
    ids=["0", "1", "modulus-1", "modulus+1", "10MiB"],
)
def test_b1_malformed_wrapped_key_before_any_private_key_op(
    tmp_path: Path, oaep_a: Seed, pem: PemKey, size: int, words: str
) -> None:
    assert oaep_a.wrapped is not None
    real = oaep_a.wrapped.read_bytes()
    body = (real * (size // len(real) + 1))[:size]  # real bytes, wrong length
    wk = _with_wrapped(tmp_path, oaep_a, body)
    spy = SpyKey(pem)
    dest = tmp_path / "restored.sql"
    rep = run_job(oaep_a.data, keys=[spy], wrapped=wk, dest=dest)
    err = assert_failed(rep, obj=wk, layer="key", kind="MalformedKeyObject")
    assert words in err["message"], err
    assert spy.unwraps == 0
    assert_nothing_written(dest)


def test_b1_wrapped_key_for_another_key_size(tmp_path: Path, oaep_a: Seed, pem: PemKey) -> None:
    """384 bytes is an RSA-3072 wrapped key: the message says which key size
    is needed, still before any private-key operation."""
    wk = _with_wrapped(tmp_path, oaep_a, bytes(range(256)) + bytes(128))
    spy = SpyKey(pem)
    rep = run_job(oaep_a.data, keys=[spy], wrapped=wk)
    err = assert_failed(rep, obj=oaep_a.data, layer="key", kind="WrongKey")
    assert "RSA-3072" in err["message"] and "RSA-2048" in err["message"]
    assert spy.unwraps == 0


def test_b1_cli_huge_wrapped_key(tmp_path: Path, oaep_a: Seed, rsa_key: RsaKey) -> None:
    wk = _with_wrapped(tmp_path, oaep_a, b"\x55" * (10 << 20))
    rc, rep, err = cli_json(
        "verify", str(oaep_a.data), "--key", str(rsa_key.private), "--wrapped-key", str(wk)
    )
    assert rc == 1 and rep is not None, err
    assert_failed(rep, obj=wk, layer="key", kind="MalformedKeyObject")


# --- B2/B3: a bit flip in the wrapped key ------------------------------------------


@pytest.mark.slow  # ~4-10 s: the garbage v1.5 decode is searched in two password forms
def test_b2_bit_flip_in_oaep_wrapped_key(tmp_path: Path, oaep_a: Seed, pem: PemKey) -> None:
    assert oaep_a.wrapped is not None
    wk = _with_wrapped(tmp_path, oaep_a, flip(oaep_a.wrapped.read_bytes(), 100, 2))
    dest = tmp_path / "restored.sql"
    rep = run_job(oaep_a.data, keys=[pem], wrapped=wk, dest=dest)
    _assert_wrong_key(rep, oaep_a.data, dest)


def test_b3_bit_flip_in_pkcs1_wrapped_key(tmp_path: Path, pkcs1: Seed, pem: PemKey) -> None:
    """cryptography's implicit rejection returns garbage for the damaged
    block; the garbage is tried as a secret and fails on the data: WrongKey,
    not a decompression error after decrypting with a garbage key."""
    assert pkcs1.wrapped is not None
    wk = _with_wrapped(tmp_path, pkcs1, flip(pkcs1.wrapped.read_bytes(), 100, 5))
    dest = tmp_path / "restored.sql"
    rep = run_job(pkcs1.data, keys=[pem], wrapped=wk, dest=dest)
    err = _assert_wrong_key(rep, pkcs1.data, dest)
    assert str(wk) in err["message"]


@pytest.mark.slow
@pytest.mark.parametrize("offset", [1, 2, 64, 128, 200, 254, 255])
def test_b3_bit_flips_across_pkcs1_wrapped_key(
    tmp_path: Path, pkcs1: Seed, pem: PemKey, offset: int
) -> None:
    assert pkcs1.wrapped is not None
    wk = _with_wrapped(tmp_path, pkcs1, flip(pkcs1.wrapped.read_bytes(), offset, offset % 8))
    dest = tmp_path / "restored.sql"
    rep = run_job(pkcs1.data, keys=[pem], wrapped=wk, dest=dest)
    _assert_wrong_key(rep, pkcs1.data, dest)


@pytest.mark.slow
@pytest.mark.parametrize("offset", [0, 1, 128, 255])
def test_b2_bit_flips_across_oaep_wrapped_key(
    tmp_path: Path, oaep_a: Seed, pem: PemKey, offset: int
) -> None:
    assert oaep_a.wrapped is not None
    wk = _with_wrapped(tmp_path, oaep_a, flip(oaep_a.wrapped.read_bytes(), offset, 7))
    dest = tmp_path / "restored.sql"
    rep = run_job(oaep_a.data, keys=[pem], wrapped=wk, dest=dest)
    _assert_wrong_key(rep, oaep_a.data, dest)


# --- B4/B6: another key -------------------------------------------------------------


def test_b4_another_private_key_names_fingerprint(
    tmp_path: Path, pkcs1: Seed, other_rsa_key: RsaKey
) -> None:
    other = PemKey.from_file(other_rsa_key.private)
    dest = tmp_path / "restored.sql"
    rc, rep, err = cli_json(
        "restore", str(pkcs1.data), "-o", str(dest), "--key", str(other_rsa_key.private)
    )
    assert rc == 1 and rep is not None, err
    e = assert_failed(rep, obj=pkcs1.data, layer="key", kind="WrongKey")
    # An RSA ciphertext does not record its key: the message names the key tried.
    assert other.fingerprint in e["message"], e
    assert str(other_rsa_key.private) in e["message"]
    assert_nothing_written(dest)


@pytest.mark.slow
def test_b6_wrapped_under_retired_key_names_all_keys_tried(
    tmp_path: Path, dump: Path, rsa_key: RsaKey, other_rsa_key: RsaKey
) -> None:
    """The current wrapped key was made for a key the user no longer holds."""
    retired = make_rsa_key(tmp_path / "retired", "retired", 2048)
    b = openssl_variant(dump, tmp_path / "s3", key=retired, wrap="oaep-sha256")
    keys = [PemKey.from_file(rsa_key.private), PemKey.from_file(other_rsa_key.private)]
    rep = run_job(b.data, keys=keys, wrapped=b.wrapped_key)
    err = assert_failed(rep, obj=b.data, layer="key", kind="WrongKey")
    for k in keys:
        assert k.fingerprint in err["message"]


def test_b6_right_key_among_several(
    tmp_path: Path, oaep_a: Seed, rsa_key: RsaKey, other_rsa_key: RsaKey
) -> None:
    rc, rep, err = cli_json(
        "verify",
        str(oaep_a.data),
        "--key",
        str(other_rsa_key.private),
        "--key",
        str(rsa_key.private),
        "--wrapped-key",
        str(oaep_a.wrapped),
    )
    assert rc == 0 and rep is not None, err
    key = next(x for x in rep["layers"] if x["layer"] == "key")
    assert key["details"]["fingerprint"] == PemKey.from_file(rsa_key.private).fingerprint


# --- A9: data of one backup, wrapped key of another ---------------------------------


def test_a9_wrapped_key_from_another_backup(
    tmp_path: Path, oaep_a: Seed, oaep_b: Seed, pem: PemKey
) -> None:
    """Both wrapped keys are authentic for this private key (OAEP), so the
    message can say more than "wrong key": the pair does not belong together."""
    dest = tmp_path / "restored.sql"
    rep = run_job(oaep_a.data, keys=[pem], wrapped=oaep_b.wrapped, dest=dest)
    err = _assert_wrong_key(rep, oaep_a.data, dest)
    assert "belongs to another backup" in err["message"], err
    assert "authenticated" in err["message"]


# --- encrypted PEM and missing key files (exit 2) -----------------------------------


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, dump: Path) -> tuple[RsaKey, Seed, Path]:
    d = tmp_path_factory.mktemp("locked")
    key = make_rsa_key(d / "keys", "locked", 2048, passphrase="correct horse battery")
    b = openssl_variant(dump, d / "s3", key=key, wrap="oaep-sha256")
    pf = d / "pem-pass.txt"
    pf.write_text("correct horse battery\n")  # a trailing newline, as editors leave it
    return key, Seed(b.data, b.wrapped_key, dump.read_bytes()), pf


def test_encrypted_pem_right_passphrase(locked: tuple[RsaKey, Seed, Path]) -> None:
    key, s, pf = locked
    rc, rep, err = cli_json(
        "verify", str(s.data), "--key", str(key.private), "--key-passphrase-file", str(pf)
    )
    assert rc == 0 and rep is not None, err


def test_encrypted_pem_wrong_passphrase_is_exit_2(
    tmp_path: Path, locked: tuple[RsaKey, Seed, Path]
) -> None:
    key, s, _ = locked
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("Tr0ub4dor&3\n")
    r = run_cli(
        "verify", str(s.data), "--key", str(key.private), "--key-passphrase-file", str(wrong)
    )
    assert r.returncode == 2, r
    assert "wrong passphrase" in r.stderr and str(key.private) in r.stderr
    assert "Tr0ub4dor" not in r.stderr + r.stdout  # the secret is never echoed


def test_encrypted_pem_without_passphrase_is_exit_2(locked: tuple[RsaKey, Seed, Path]) -> None:
    key, s, _ = locked
    r = run_cli("verify", str(s.data), "--key", str(key.private), stdin=None)
    assert r.returncode == 2, r
    assert "is encrypted" in r.stderr and str(key.private) in r.stderr


def test_missing_key_file_is_exit_2(tmp_path: Path, oaep_a: Seed) -> None:
    missing = tmp_path / "nope.pem"
    r = run_cli("verify", str(oaep_a.data), "--key", str(missing))
    assert r.returncode == 2, r
    assert "no such key file" in r.stderr and str(missing) in r.stderr


def test_missing_passphrase_file_is_exit_2(tmp_path: Path, oaep_a: Seed, rsa_key: RsaKey) -> None:
    missing = tmp_path / "nope.txt"
    r = run_cli(
        "verify",
        str(oaep_a.data),
        "--key",
        str(rsa_key.private),
        "--key-passphrase-file",
        str(missing),
    )
    # The key is not encrypted, so its passphrase file is never read.
    assert r.returncode == 0, r.stderr


def test_no_key_at_all_is_exit_2(oaep_a: Seed) -> None:
    rc, rep, err = cli_json("verify", str(oaep_a.data))
    assert rc == 2 and rep is not None, err
    assert_failed(rep, obj=oaep_a.data, layer="key", kind="KeyUnavailable", exit_code=2)

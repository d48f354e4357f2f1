"""AES through libcrypto by ctypes (issue 17): openssl's own bytes, the same errors,
and cryptography when libcrypto cannot be loaded.

Every backup here is made and decrypted by the real ``openssl enc``; the key and IV
are the ones openssl itself prints (``-P``).
"""

from __future__ import annotations

import base64
import random
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.adversarial import run_job
from fixtures.dumps import random_dump
from fixtures.pipelines import openssl_variant
from sealcheck.core.decrypt.openssl import evp
from sealcheck.core.decrypt.openssl.header import CIPHERS, CIPHERS_BY_NAME, EncParams, raw_params
from sealcheck.core.decrypt.openssl.stream import DecryptReader
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.errors import IntegrityError, Layer, SealcheckError, TruncatedBackup
from sealcheck.core.payload.inspector import PayloadInspector
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.plumbing.progress import CancelToken
from sealcheck.core.storage.source import LocalFile

MiB = 1 << 20


class Trickle:
    """The ciphertext in reads of uneven sizes (block-aligned or not), as a network
    source may hand it over."""

    def __init__(self, data: bytes, seed: int) -> None:
        self._data, self._pos, self._rng = data, 0, random.Random(seed)

    def read(self, n: int = -1, /) -> bytes:
        size = self._rng.choice([1, 15, 16, 17, 4096, 65_537, 1 << 20])
        out = self._data[self._pos : self._pos + size]
        self._pos += len(out)
        return out


class Split:
    """The ciphertext in reads of one size."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data, self._pos, self._size = data, 0, size

    def read(self, n: int = -1, /) -> bytes:
        out = self._data[self._pos : self._pos + self._size]
        self._pos += len(out)
        return out


def _openssl_params(cipher: str, data: Path, passfile: Path) -> EncParams:
    """Key and IV as ``openssl enc -P`` derives them from the object's salt."""
    out = subprocess.run(
        ["openssl", "enc", "-d", f"-{cipher}", "-pbkdf2", "-pass", f"file:{passfile}", "-P"],
        stdin=data.open("rb"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    vals = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in out.splitlines())}
    return raw_params(CIPHERS_BY_NAME[cipher], vals["key"], vals["iv"])


def _decrypt(ciphertext: bytes, params: EncParams, seed: int = 0, split: int = 0) -> bytes:
    up = Split(ciphertext, split) if split else Trickle(ciphertext, seed)
    dec = DecryptReader(up, params, obj="x")
    params.wipe()  # as the opener does: the decryptor must not need them any more
    parts = []
    while b := dec.read(1 << 20):
        parts.append(b)
    return b"".join(parts)


@pytest.fixture(params=["libcrypto", "cryptography"])
def decryptor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "cryptography":
        monkeypatch.setattr(evp, "USE_LIBCRYPTO", False)
    yield request.param


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[evp.EvpDecryptor]:
    """Every libcrypto decryptor made from now on (held here, so a context found
    freed was freed by the code, not by the garbage collector)."""
    out: list[evp.EvpDecryptor] = []
    real = evp.EvpDecryptor.__init__

    def init(self: evp.EvpDecryptor, *a: Any) -> None:
        real(self, *a)
        out.append(self)

    monkeypatch.setattr(evp.EvpDecryptor, "__init__", init)
    return out


def test_libcrypto_is_there_on_linux() -> None:
    # Without it cryptography decrypts (same bytes, holding the GIL): this says which ran.
    lib = evp.libcrypto()
    assert lib is not None
    assert lib.version() >> 28 == ssl.OPENSSL_VERSION_INFO[0]  # ssl's own major version
    spec = CIPHERS_BY_NAME["aes-256-cbc"]
    assert isinstance(evp.aes_decryptor(spec, bytearray(32), bytearray(16)), evp.EvpDecryptor)


@pytest.mark.parametrize("cipher", [c.name for c in CIPHERS])
def test_byte_identical_to_openssl(tmp_path: Path, cipher: str, decryptor: str) -> None:
    plain = tmp_path / "dump.bin"
    # Text (the key trial wants a known format or text first), and not a multiple of
    # the block: the padding (CBC) or a partial last block (CTR).
    rng = random.Random(cipher)
    text = base64.encodebytes(rng.randbytes(3 * (1 << 20)))
    plain.write_bytes(b"-- dump\n" + text[: len(text) - 7])
    b = openssl_variant(plain, tmp_path / "out", compress="cat", enc_opts=f"-{cipher} -pbkdf2")
    assert b.passphrase_file is not None
    expected = tmp_path / "openssl.out"
    subprocess.run(
        ["openssl", "enc", "-d", f"-{cipher}", "-pbkdf2", "-pass", f"file:{b.passphrase_file}"],
        stdin=b.data.open("rb"),
        stdout=expected.open("wb"),
        check=True,
    )
    body = b.data.read_bytes()[16:]  # after "Salted__" and the salt
    for seed in range(3):
        params = _openssl_params(cipher, b.data, b.passphrase_file)
        assert _decrypt(body, params, seed) == expected.read_bytes()
    # And a whole verify of it, in-process.
    rep = run_job(b.data, passphrase=b.passphrase_file.read_bytes())
    assert rep.ok, rep.error


@pytest.mark.parametrize("cipher", [c.name for c in CIPHERS])
def test_any_split_of_the_ciphertext(
    tmp_path: Path, cipher: str, decryptor: str, made: list[evp.EvpDecryptor]
) -> None:
    """Reads of 1, 15, 16, 17 bytes, a block and one byte over, 1 MiB and one byte
    over: the same plaintext, the one ``openssl enc`` encrypted."""
    rng = random.Random(cipher + "split")
    small = rng.randbytes(40_000 + 7)  # not a whole number of blocks
    large = rng.randbytes(3 * MiB + 9)
    for plain, splits in ((small, (1, 15, 16, 17, 33, 4097)), (large, (MiB, MiB + 1, MiB - 1))):
        src = tmp_path / "plain.bin"
        src.write_bytes(plain)
        b = openssl_variant(src, tmp_path / "out", compress="cat", enc_opts=f"-{cipher} -pbkdf2")
        assert b.passphrase_file is not None
        body = b.data.read_bytes()[16:]
        for split in splits:
            params = _openssl_params(cipher, b.data, b.passphrase_file)
            assert _decrypt(body, params, split=split) == plain, split
    assert bool(made) == (decryptor == "libcrypto")  # the path under test did decrypt


def _error(ciphertext: bytes, params: EncParams) -> SealcheckError:
    with pytest.raises(SealcheckError) as exc:
        _decrypt(ciphertext, params)
    return exc.value


@pytest.mark.parametrize("cipher", ["aes-256-cbc", "aes-128-cbc", "aes-192-ctr"])
def test_errors_are_the_same_either_way(
    tmp_path: Path, cipher: str, monkeypatch: pytest.MonkeyPatch, made: list[evp.EvpDecryptor]
) -> None:
    plain = tmp_path / "dump.sql"
    plain.write_bytes(b"INSERT INTO t VALUES (1);\n" * 5000)
    b = openssl_variant(plain, tmp_path / "out", compress="cat", enc_opts=f"-{cipher} -pbkdf2")
    assert b.passphrase_file is not None
    body = b.data.read_bytes()[16:]
    spec = CIPHERS_BY_NAME[cipher]

    def errors() -> list[tuple[type, str]]:
        good = _openssl_params(cipher, b.data, b.passphrase_file)  # type: ignore[arg-type]
        wrong = raw_params(spec, "5a" * spec.key_len, "a5" * 16)
        found = []
        for data, params in ((body[:-5], good), (body[:-16], good), (body, wrong)):
            try:
                _decrypt(data, params)
            except SealcheckError as exc:
                found.append((type(exc), str(exc)))
            else:
                found.append((type(None), ""))
        return found

    via_libcrypto = errors()
    assert len(made) == 3
    assert all(d._ctx is None for d in made)  # freed on each error as at each end
    monkeypatch.setattr(evp, "USE_LIBCRYPTO", False)
    assert errors() == via_libcrypto
    assert len(made) == 3
    cut5, cut16, wrong_key = via_libcrypto
    if spec.mode == "cbc":
        assert cut5[0] is TruncatedBackup
        assert (
            f"the ciphertext ({len(body) - 5} bytes) is not a whole number of AES blocks"
            in (cut5[1])
        )
        # Cut at a block boundary, or a wrong key: the last block's padding is invalid.
        for kind, text in (cut16, wrong_key):
            assert kind is IntegrityError
            assert "the last cipher block has invalid PKCS#7 padding" in text
    else:  # CTR is a stream (no blocks, no padding): any cut or key decrypts, to garbage
        assert via_libcrypto == [(type(None), "")] * 3


def test_falls_back_when_libcrypto_cannot_be_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine without the library (as a bundle without it would be): the real
    loader fails to find it, cryptography decrypts and the verify passes."""
    monkeypatch.setattr(evp, "_names", lambda major: [f"libcrypto.so.{major}.absent"])
    evp._load.cache_clear()
    try:
        assert evp.libcrypto() is None
        spec = CIPHERS_BY_NAME["aes-256-cbc"]
        dec = evp.aes_decryptor(spec, bytearray(32), bytearray(16))
        assert isinstance(dec, evp.CryptographyDecryptor)
        plain = tmp_path / "dump.sql"
        plain.write_bytes(b"SELECT 1;\n" * 1000)
        b = openssl_variant(plain, tmp_path / "out", enc_opts="-aes-256-cbc -pbkdf2")
        assert b.passphrase_file is not None
        rep = run_job(b.data, passphrase=b.passphrase_file.read_bytes())
        assert rep.ok, rep.error
    finally:
        monkeypatch.undo()
        evp._load.cache_clear()
    assert evp.libcrypto() is not None


@pytest.mark.parametrize("ssl_major", [None, 1, 2])
def test_only_ssls_major_version_is_loaded(ssl_major: int | None) -> None:
    """A Python without ssl (None), or one built with another OpenSSL than the
    machine's libcrypto.so.3 (1: the name is tried and the library loads, but its
    version says 3; 2: no such library): cryptography decrypts."""
    evp._load.cache_clear()
    real_major, real_names = evp._ssl_major, evp._names
    try:
        evp._ssl_major = lambda: ssl_major  # type: ignore[assignment]
        evp._names = lambda major: [*real_names(major), *real_names(3)]  # type: ignore[assignment]
        assert evp.libcrypto() is None
        spec = CIPHERS_BY_NAME["aes-256-ctr"]
        assert isinstance(
            evp.aes_decryptor(spec, bytearray(32), bytearray(16)), evp.CryptographyDecryptor
        )
    finally:
        evp._ssl_major, evp._names = real_major, real_names
        evp._load.cache_clear()
    assert evp.libcrypto() is not None


def test_falls_back_when_the_cipher_cannot_be_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: libcrypto loads but has no such cipher (a restricted build)."""
    lib = evp.libcrypto()
    assert lib is not None

    def no_cipher(name: str) -> int:
        raise OSError(f"libcrypto has no {name} (injected)")

    monkeypatch.setattr(lib, "cipher", no_cipher)
    dec = evp.aes_decryptor(CIPHERS_BY_NAME["aes-128-ctr"], bytearray(16), bytearray(16))
    assert isinstance(dec, evp.CryptographyDecryptor)


def test_key_context_freed_at_the_end() -> None:
    spec = CIPHERS_BY_NAME["aes-256-cbc"]
    key, iv = bytearray(b"k" * 32), bytearray(b"i" * 16)
    dec = evp.aes_decryptor(spec, key, iv)
    assert isinstance(dec, evp.EvpDecryptor)
    # The caller's bytearrays are not held (exported) by the decryptor: they can be wiped.
    key[:] = bytes(32)
    iv[:] = bytes(16)
    dec.update(bytes(64))
    dec.finalize()
    assert dec._ctx is None  # EVP_CIPHER_CTX_free: the key schedule cleansed
    with pytest.raises(ValueError):
        dec.update(bytes(64))


def _big_backup(tmp_path: Path) -> tuple[Path, bytes]:
    dump = random_dump(tmp_path / "dump.sql", 8 * MiB)
    b = openssl_variant(dump, tmp_path / "out", enc_opts="-aes-256-cbc -pbkdf2")
    assert b.passphrase_file is not None
    return b.data, b.passphrase_file.read_bytes()


def test_context_freed_when_the_run_is_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made: list[evp.EvpDecryptor]
) -> None:
    """Cancelled mid-stream (the tripwire only calls cancel(), after two chunks): the
    run's closers free the context, with megabytes of ciphertext still unread."""
    data, passphrase = _big_backup(tmp_path)
    token = CancelToken()
    calls = []
    real = evp.EvpDecryptor.update

    def update(self: evp.EvpDecryptor, chunk: bytes, /) -> bytes:
        calls.append(len(chunk))
        if len(calls) == 2:
            token.cancel()
        return real(self, chunk)

    monkeypatch.setattr(evp.EvpDecryptor, "update", update)
    job = Job(
        data=LocalFile(data),
        secrets=Secrets(passphrase=bytearray(passphrase)),
        operation="verify",
        cancel=token,
    )
    rep = run(job)
    assert rep.error is not None and rep.error.kind == "Cancelled"
    assert sum(calls) < data.stat().st_size // 2
    assert len(made) == 1 and made[0]._ctx is None


def test_context_freed_when_a_later_layer_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made: list[evp.EvpDecryptor]
) -> None:
    """Fault injection: the payload check fails on its second chunk, while the
    decryption is far from its end."""
    data, passphrase = _big_backup(tmp_path)
    fed = []
    real = PayloadInspector.feed

    def feed(self: PayloadInspector, chunk: bytes) -> None:
        fed.append(len(chunk))
        if len(fed) == 2:
            raise IntegrityError("injected payload fault", obj="x", layer=Layer.PAYLOAD)
        real(self, chunk)

    monkeypatch.setattr(PayloadInspector, "feed", feed)
    rep = run_job(data, passphrase=passphrase)
    assert rep.error is not None and "injected payload fault" in rep.error.message
    assert len(made) == 1 and made[0]._ctx is None


def test_close_from_another_thread_waits_for_the_call_under_way() -> None:
    """The pipeline's closers run on the consumer's thread while the decode thread
    may be inside update(): close waits for it; the next update fails cleanly."""
    spec = CIPHERS_BY_NAME["aes-256-cbc"]
    dec = evp.aes_decryptor(spec, bytearray(32), bytearray(16))
    assert isinstance(dec, evp.EvpDecryptor)
    chunk = bytes(32 * MiB)
    got: list[object] = []

    def decrypt() -> None:
        try:
            got.append(len(dec.update(chunk)))
            got.append(len(dec.update(chunk)))
        except ValueError as exc:
            got.append(str(exc))

    t = threading.Thread(target=decrypt)
    t.start()
    dec.close()  # before, during or between the two calls: never under one
    t.join()
    assert dec._ctx is None
    assert got[-1] == "the decryption has ended" or got == [32 * MiB - 16, 32 * MiB]

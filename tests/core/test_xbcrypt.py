"""xbcrypt v1/v2/v3 and its keys (issue 16).

Vectors come from the independent encoder in tests/fixtures/xbcrypt.py (no packaged
program writes xbcrypt here): every version, every key size, chunk sizes 1024 /
8 KiB / 64 KiB / 128 KiB, Percona's own test key and ApsaraDB's hex-string key.
AWS KMS is moto's, over HTTP.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.physical import qpress_stored
from fixtures.xbcrypt import (
    CHUNK_SIZES,
    PERCONA_TEST_KEY,
    encrypt,
    write_xbstream,
    xbstream_chunk,
)
from sealcheck.core.decompress.qpress import QpressDecoder
from sealcheck.core.decrypt.xbcrypt import XbcryptDecoder, XbcryptReader
from sealcheck.core.decrypt.xbkey import (
    XbcryptKeyInvalid,
    key_from_aws_kms,
    key_from_file,
    key_from_kms_plaintext,
    key_from_kms_plaintext_file,
)
from sealcheck.core.errors import IntegrityError, Layer, TruncatedBackup, WrongKey
from sealcheck.core.physical.check import PhysicalCheck
from sealcheck.core.plumbing.progress import CancelToken
from sealcheck.core.plumbing.relpath import UnsafeMemberPath
from sealcheck.core.plumbing.streams import BytesReader

# ApsaraDB: KMS Decrypt's Plaintext (base64 of a 16-byte data key) → lowercase hex.
APSARA_DATA_KEY = bytes(range(0x40, 0x50))
APSARA_PLAINTEXT_B64 = base64.b64encode(APSARA_DATA_KEY)
APSARA_KEY = binascii.hexlify(APSARA_DATA_KEY)  # 32 ASCII characters: AES-256
KEYS = {16: b"0123456789abcdef", 24: b"0123456789abcdef01234567", 32: PERCONA_TEST_KEY}
DATA = os.urandom(150_000) + b"INSERT INTO t VALUES (1);\n" * 9000


def decrypt(blob: bytes, key: bytes, *, feed: int = 7777) -> tuple[bytes, XbcryptDecoder]:
    dec = XbcryptDecoder(key, name="t", obj="vec")
    out = b"".join(dec.feed(blob[i : i + feed]) for i in range(0, len(blob), feed))
    dec.finish()
    return out, dec


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("size", [16, 24, 32])
@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_vectors_every_version_key_size_and_chunk(version: int, size: int, chunk: int) -> None:
    blob = encrypt(DATA, KEYS[size], version=version, chunk=chunk)
    assert blob.startswith(b"XBCRYP0%d" % version)
    out, dec = decrypt(blob, KEYS[size])
    assert out == DATA
    assert dec.stats.chunks == -(-len(DATA) // chunk)
    assert dec.stats.key_proved is (version == 3)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_apsaradb_hex_string_key(version: int, tmp_path: Path) -> None:
    f = tmp_path / "plaintext.b64"
    f.write_bytes(APSARA_PLAINTEXT_B64 + b"\n")  # the console's text, newline and all
    key = key_from_kms_plaintext_file(f)
    assert bytes(key.key) == APSARA_KEY and key.cipher == "AES-256-CTR"
    assert bytes(key_from_kms_plaintext(APSARA_PLAINTEXT_B64).key) == APSARA_KEY
    out, _ = decrypt(encrypt(DATA, APSARA_KEY, version=version), bytes(key.key))
    assert out == DATA


def test_v2_stored_iv_is_not_the_counter() -> None:
    """XtraBackup's v2 writer set an IV that CTR mode ignored: the counter is zero."""
    blob = bytearray(encrypt(b"x" * 5000, PERCONA_TEST_KEY, version=2, chunk=1024))
    blob[44:60] = os.urandom(16)  # another stored IV changes nothing
    out, _ = decrypt(bytes(blob), PERCONA_TEST_KEY)
    assert out == b"x" * 5000


def test_wrong_key_v3_is_named_wrong_key_v1_is_not_provable() -> None:
    v3 = encrypt(DATA, PERCONA_TEST_KEY, version=3)
    with pytest.raises(WrongKey, match="SHA-256"):
        decrypt(v3, b"X" * 32)
    v1 = encrypt(DATA, PERCONA_TEST_KEY, version=1)
    out, dec = decrypt(v1, b"X" * 32)  # garbage, and nothing in v1 can say so
    assert out != DATA and not dec.stats.key_proved


@pytest.mark.parametrize("version", [1, 2, 3])
def test_flipped_bit_in_a_chunk_fails_its_crc(version: int) -> None:
    blob = bytearray(encrypt(DATA, PERCONA_TEST_KEY, version=version, chunk=8192))
    blob[-100] ^= 0x01
    with pytest.raises(IntegrityError, match="CRC-32") as e:
        decrypt(bytes(blob), PERCONA_TEST_KEY)
    assert e.value.layer is Layer.CIPHER


def test_truncated_stream() -> None:
    blob = encrypt(DATA, PERCONA_TEST_KEY, version=3, chunk=8192)
    with pytest.raises(TruncatedBackup, match="ends inside a chunk"):
        decrypt(blob[:-10], PERCONA_TEST_KEY)


def test_whole_stream_reader() -> None:
    blob = encrypt(DATA, PERCONA_TEST_KEY, version=3, chunk=1024)
    r = XbcryptReader(BytesReader(blob), PERCONA_TEST_KEY, obj="x", cancel=CancelToken())
    out = b"".join(iter(lambda: r.read(3000), b""))
    assert out == DATA and r.eof


def test_key_file_raw_bytes_and_newline_message(tmp_path: Path) -> None:
    good = tmp_path / "k"
    good.write_bytes(PERCONA_TEST_KEY)
    assert bytes(key_from_file(good).key) == PERCONA_TEST_KEY
    nl = tmp_path / "k-newline"
    nl.write_bytes(PERCONA_TEST_KEY + b"\n")  # echo instead of echo -n
    with pytest.raises(XbcryptKeyInvalid, match="ends with a newline") as e:
        key_from_file(nl)
    assert "corrupt" not in str(e.value) and e.value.exit_code == 2
    odd = tmp_path / "k-odd"
    odd.write_bytes(b"short")
    with pytest.raises(XbcryptKeyInvalid, match="16, 24 or 32"):
        key_from_file(odd)


def test_aws_kms_decrypt_of_a_data_key(moto_store, tmp_path: Path, monkeypatch) -> None:
    import boto3

    kms = boto3.client("kms", endpoint_url=moto_store.endpoint)
    key_id = kms.create_key(Description="sealcheck test")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=APSARA_DATA_KEY)["CiphertextBlob"]
    f = tmp_path / "datakey.enc"
    f.write_bytes(blob)
    key = key_from_aws_kms(f, endpoint_url=moto_store.endpoint)
    assert bytes(key.key) == APSARA_KEY  # the ApsaraDB recipe: the data key's hex
    (tmp_path / "datakey.b64").write_bytes(base64.b64encode(blob))  # aws kms … --output text
    assert (
        bytes(key_from_aws_kms(tmp_path / "datakey.b64", endpoint_url=moto_store.endpoint).key)
        == APSARA_KEY
    )
    # Through the CLI: a backup whose members are encrypted with that key.
    stream = write_xbstream({"a/t.txt.xbcrypt": encrypt(DATA, APSARA_KEY, version=3)})
    bk = tmp_path / "backup.xbstream"
    bk.write_bytes(stream)
    env = {**os.environ, "AWS_ENDPOINT_URL_KMS": moto_store.endpoint}
    r = run_cli("verify", str(bk), "--kms-ciphertext-file", str(f), "--json", env=env)
    # Not a whole backup (no checkpoints): the key and members were proved before that.
    assert r.returncode == 1, r.stdout + r.stderr
    assert '"member-cipher"' in r.stdout and "xtrabackup_checkpoints" in r.stdout
    assert APSARA_KEY.decode() not in r.stdout + r.stderr


# --- xbstream and qpress paths --------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["../evil", "a/../../evil", "/etc/cron.d/x", "a//b", "./x", "a\\..\\b", ""]
)
def test_hostile_xbstream_path_refused_with_its_name(path: str) -> None:
    stream = xbstream_chunk(path, b"data") + xbstream_chunk(path, None)
    chk = PhysicalCheck(key=None, obj="hostile", check_pages=False)
    with pytest.raises(UnsafeMemberPath) as e:
        chk.feed(stream)
    assert repr(path) in str(e.value)


def test_hostile_qpress_member_name_refused() -> None:
    arch = qpress_stored({"../../etc/passwd": b"x"})
    with pytest.raises(UnsafeMemberPath, match=r"'\.\./\.\./etc/passwd'"):
        QpressDecoder(name="m.qp", obj="q").feed(arch)


def test_xbstream_gap_and_crc() -> None:
    gap = xbstream_chunk("f", b"abc", 0) + xbstream_chunk("f", b"def", 10)
    with pytest.raises(IntegrityError, match="gap or an overlap"):
        PhysicalCheck(key=None, obj="x", check_pages=False).feed(gap)
    bad = bytearray(xbstream_chunk("f", b"abcdef", 0))
    bad[-1] ^= 1
    with pytest.raises(IntegrityError, match="CRC-32 mismatch"):
        PhysicalCheck(key=None, obj="x", check_pages=False).feed(bytes(bad))
    open_file = xbstream_chunk("f", b"abc", 0)
    chk = PhysicalCheck(key=None, obj="x", check_pages=False)
    chk.feed(open_file)
    with pytest.raises(TruncatedBackup, match="end chunk of 'f'"):
        chk.finish()


def test_member_layers_found_by_content_either_order() -> None:
    """``NAME.qp.xbcrypt`` (XtraBackup) and ``NAME.xbcrypt.qp`` (the seed's reading)."""
    inner = qpress_stored({"t.ibd": DATA})
    files = {
        "db/t1.ibd.qp.xbcrypt": encrypt(inner, PERCONA_TEST_KEY, version=3, chunk=8192),
        "db/t2.ibd.xbcrypt.qp": qpress_stored({"t2.ibd.xbcrypt": encrypt(DATA, PERCONA_TEST_KEY)}),
        "db/t3.ibd.bin": encrypt(DATA, PERCONA_TEST_KEY, version=1),  # no suffix: content says
    }
    got: dict[str, bytes] = {}

    class Sink:
        def data(self, name: str, data: bytes) -> None:
            got[name] = got.get(name, b"") + data

        def end(self, name: str) -> None:
            got.setdefault(name, b"")

    from sealcheck.core.decrypt.xbkey import XbcryptKey

    chk = PhysicalCheck(
        key=XbcryptKey(bytearray(PERCONA_TEST_KEY), "test"), obj="x", writer=Sink(),  # type: ignore[arg-type]
        check_pages=False,
    )  # fmt: skip
    chk.feed(write_xbstream(files, piece=5000))
    chk.reader.finish()
    assert got == {"db/t1.ibd": DATA, "db/t2.ibd": DATA, "db/t3.ibd.bin": DATA}
    assert chk.tally.stacks == {"xbcrypt > qpress": 1, "qpress > xbcrypt": 1, "xbcrypt": 1}


def test_qpress_multi_file_archive_and_its_checks() -> None:
    arch = qpress_stored({"a": b"1" * 70000, "b": b"", "c": b"xyz"})
    dec = QpressDecoder(name="m", obj="q")
    pieces = [p for i in range(0, len(arch), 1000) for p in dec.feed(arch[i : i + 1000])]
    dec.finish()
    out: dict[str, bytes] = {}
    for n, d in pieces:
        out[n] = out.get(n, b"") + d
    assert out == {"a": b"1" * 70000, "b": b"", "c": b"xyz"}
    bad = bytearray(arch)
    bad[40] ^= 1  # inside the first block
    with pytest.raises(IntegrityError, match="Adler-32"):
        QpressDecoder(name="m", obj="q").feed(bytes(bad))
    cut = QpressDecoder(name="m", obj="q")
    cut.feed(arch[:-20])
    with pytest.raises(TruncatedBackup, match="ENDSENDS"):
        cut.finish()
    assert struct.unpack_from("<Q", arch, 8)[0] == 65536

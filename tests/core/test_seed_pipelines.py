"""One test per seed pipeline, made with the real tools, verified through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.common import SHARED, run_cli
from fixtures.pipelines import (
    clustercontrol,
    dpb587_gpg,
    export_secret_key,
    gpg_home_with_key,
    openssl_variant,
    rds_postgres,
    securecircle,
)


def verify_json(*args: str) -> tuple[int, dict]:
    r = run_cli("verify", *args, "--json")
    return r.returncode, json.loads(r.stdout)


def layer(report: dict, name: str) -> dict:
    return next(x for x in report["layers"] if x["layer"] == name)


def test_securecircle_rsautl_md5_gzip(tmp_path: Path, small_dump: Path, rsa_key) -> None:
    b = securecircle(small_dump, tmp_path / "s3", rsa_key)
    rc, rep = verify_json(str(b.data), "--key", str(rsa_key.private))
    assert rc == 0, rep
    assert layer(rep, "key")["details"]["padding"] == "PKCS#1 v1.5"
    assert layer(rep, "cipher")["details"]["kdf"] == "EVP_BytesToKey-MD5"
    assert layer(rep, "cipher")["details"]["password_form"] in ("pass", "either")
    assert layer(rep, "payload")["details"]["completeness"] == "complete"
    assert rep["formats"] == ["openssl-enc", "gzip", "mysql-sql"]


@pytest.mark.parametrize("era", ["modern", "old"])
def test_rds_postgres_bzip2_pass_file(tmp_path: Path, small_dump: Path, rsa_key, era: str) -> None:
    b = rds_postgres(small_dump, tmp_path / "s3", rsa_key, era=era)
    rc, rep = verify_json(str(b.data), "--key", str(rsa_key.private))
    assert rc == 0, rep
    assert rep["wrapped_key"]["uri"].endswith(".key.txt.enc" if era == "modern" else ".key.bin.enc")
    cipher = layer(rep, "cipher")["details"]
    assert cipher["kdf"] == ("EVP_BytesToKey-SHA256" if era == "modern" else "EVP_BytesToKey-MD5")
    # Only the first line of the 3-line base64 key file was the password. (A binary
    # key without newline or NUL reads the same both ways: "either".)
    assert cipher["password_form"] == "file" or (
        era == "old" and cipher["password_form"] == "either"
    )
    assert layer(rep, "decompress")["details"]["format"] == "bzip2"


def test_rds_postgres_oaep_sha256_wrap(tmp_path: Path, small_dump: Path, rsa_key) -> None:
    b = rds_postgres(small_dump, tmp_path / "s3", rsa_key, wrap="oaep-sha256")
    rc, rep = verify_json(str(b.data), "--key", str(rsa_key.private))
    assert rc == 0, rep
    assert layer(rep, "key")["details"]["padding"] == "OAEP-SHA256"


@pytest.mark.parametrize("armor", [False, True])
def test_dpb587_gpg(tmp_path: Path, small_dump: Path, armor: bool) -> None:
    home = gpg_home_with_key(tmp_path)
    b = dpb587_gpg(small_dump, tmp_path / "s3", home, armor=armor)
    asc = export_secret_key(home, tmp_path / "secret.asc")
    rc, rep = verify_json(str(b.data), "--gpg-key", str(asc))
    assert rc == 0, rep
    assert rep["formats"][0] == ("openpgp-armored" if armor else "openpgp")
    rc, rep = verify_json(str(b.data), "--gpg-homedir", str(home))
    assert rc == 0, rep


def test_clustercontrol_symmetric_pass_file(tmp_path: Path, small_dump: Path) -> None:
    b = clustercontrol(small_dump, tmp_path / "s3")
    assert b.passphrase_file is not None
    rc, rep = verify_json(str(b.data), "--passphrase-file", str(b.passphrase_file))
    assert rc == 0, rep
    assert layer(rep, "cipher")["details"]["kdf"] == "EVP_BytesToKey-SHA256"


@pytest.mark.parametrize(
    ("compress", "enc", "wrap", "fmt"),
    [
        ("zstd -q -c", "-aes-256-cbc -pbkdf2", "oaep-sha1", "zstd"),
        ("xz -c", "-aes-128-cbc -pbkdf2 -iter 100000", "oaep-sha256-mgf1-sha1", "xz"),
        ("gzip -c", "-aes-256-ctr -pbkdf2", "rsautl", "gzip"),
        ("cat", "-aes-192-cbc -md sha1", "rsautl", "none"),
    ],
)
def test_openssl_variants(
    tmp_path: Path, small_dump: Path, rsa_key, compress, enc, wrap, fmt
) -> None:
    b = openssl_variant(
        small_dump, tmp_path / "s3", compress=compress, enc_opts=enc, key=rsa_key, wrap=wrap
    )
    assert b.wrapped_key is not None
    rc, rep = verify_json(
        str(b.data), "--key", str(rsa_key.private), "--wrapped-key", str(b.wrapped_key)
    )
    assert rc == 0, rep
    assert layer(rep, "decompress")["status"] in ("ok", "skipped")


def test_sequel_pro_dump_without_trailer_is_complete(tmp_path: Path) -> None:
    dump = SHARED / "data" / "sakila-sequelpro-mysql57.sql"
    b = clustercontrol(dump, tmp_path / "s3", name="sakila.sql.gz.aes256")
    rc, rep = verify_json(str(b.data), "--passphrase-file", str(b.passphrase_file))
    assert rc == 0, rep
    p = layer(rep, "payload")["details"]
    assert p["producer"] == "Sequel Pro"
    assert p["completeness"] == "complete: no trailer by this producer"
    assert p["server_version"] == "5.7.19"

"""CMS (S/MIME) envelopes made by the real openssl smime/cms, verified and damaged.

Certificates and keys come from ``openssl req -x509`` in the test; backups
from ``gzip | openssl smime -encrypt`` (the mysqldump-secure pipeline) and
``openssl cms -encrypt`` in DER, PEM and S/MIME text, CBC and GCM, PKCS#1
v1.5 and OAEP recipients, one or two recipients. Damage oracle (as in
test_adversarial_format): every flipped or cut object is rejected with a
typed error, or it restores byte-identical to the original dump.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.adversarial import (
    CachedKey,
    assert_failed,
    assert_nothing_written,
    cli_json,
    flip,
    run_job,
)
from fixtures.dumps import mysql_like
from fixtures.pipelines import sh
from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import Bucket
from sealcheck.core.decrypt.cms.ber import BerReader
from sealcheck.core.decrypt.cms.envelope import EnvelopeParser
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.plumbing.streams import BytesReader


@dataclass(frozen=True)
class Cert:
    key: Path
    cert: Path
    bits: int


def make_cert(folder: Path, name: str, bits: int = 2048) -> Cert:
    folder.mkdir(parents=True, exist_ok=True)
    sh(
        f"openssl req -x509 -newkey rsa:{bits} -nodes -keyout {name}.key.pem -out {name}.crt "
        f"-subj /CN={name}/O=Sealcheck-tests -days 30 2>/dev/null",
        folder,
    )
    return Cert(folder / f"{name}.key.pem", folder / f"{name}.crt", bits)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cert]:
    d = tmp_path_factory.mktemp("certs")
    return {
        "backup": make_cert(d, "backup"),
        "other": make_cert(d, "other"),
        "big": make_cert(d, "big", 3072),
    }


def encrypt(
    dump: Path, out: Path, recipients: list[Cert], command: str, *, gzip: bool = True
) -> Path:
    """``gzip -c dump | openssl smime|cms -encrypt <command options>`` as a backup script runs it."""
    feed = f"gzip -c {shlex.quote(str(dump))}" if gzip else f"cat {shlex.quote(str(dump))}"
    tool = command.split()[0]
    opts = " ".join(command.split()[1:])
    if tool == "smime":
        recips = " ".join(shlex.quote(str(c.cert)) for c in recipients)
        cmd = f"openssl smime -encrypt {opts} -out {shlex.quote(str(out))} {recips}"
    else:
        recips = " ".join(f"-recip {shlex.quote(str(c.cert))} {_keyopts(opts)}" for c in recipients)
        cmd = f"openssl cms -encrypt {_plain(opts)} -out {shlex.quote(str(out))} {recips}"
    sh(f"{feed} | {cmd}", out.parent)
    return out


def _keyopts(opts: str) -> str:
    # -keyopt applies to the -recip before it: repeat it for each recipient.
    words = opts.split()
    return " ".join(f"-keyopt {words[i + 1]}" for i, w in enumerate(words) if w == "-keyopt")


def _plain(opts: str) -> str:
    words = opts.split()
    keep = [
        w for i, w in enumerate(words) if w != "-keyopt" and (i == 0 or words[i - 1] != "-keyopt")
    ]
    return " ".join(keep)


def gcm_supported() -> bool:
    r = subprocess.run(
        ["openssl", "cms", "-encrypt", "-aes-256-gcm", "-help"], capture_output=True, check=False
    )
    probe = subprocess.run(
        ["openssl", "list", "-cipher-algorithms"], capture_output=True, text=True, check=False
    )
    return r.returncode in (0, 1) and "AES-256-GCM" in probe.stdout.upper()


GCM = pytest.mark.skipif(not gcm_supported(), reason="this openssl has no AES-GCM for cms")

# (command, first format, cipher, padding)
VARIANTS = [
    # mysqldump-secure and the scripts that copy it
    ("smime -binary -text -aes256 -outform DER", "cms", "AES-256-CBC", "PKCS#1 v1.5"),
    ("smime -binary -aes256 -outform PEM", "cms-pem", "AES-256-CBC", "PKCS#1 v1.5"),
    ("smime -binary -aes128", "smime", "AES-128-CBC", "PKCS#1 v1.5"),  # S/MIME text
    ("smime -binary -outform DER", "cms", "DES-EDE3-CBC", "PKCS#1 v1.5"),  # no cipher given
    ("cms -binary -aes256 -outform DER", "cms", "AES-256-CBC", "PKCS#1 v1.5"),
    ("cms -binary -aes192 -outform PEM", "cms-pem", "AES-192-CBC", "PKCS#1 v1.5"),
    ("cms -binary -aes256 -outform DER -stream", "cms", "AES-256-CBC", "PKCS#1 v1.5"),
    ("cms -binary -aes256 -outform PEM -stream", "cms-pem", "AES-256-CBC", "PKCS#1 v1.5"),
    (
        "cms -binary -aes256 -outform DER -keyopt rsa_padding_mode:oaep",
        "cms",
        "AES-256-CBC",
        "OAEP-SHA1",
    ),
    (
        "cms -binary -aes128 -outform DER -keyid -keyopt rsa_padding_mode:oaep "
        "-keyopt rsa_oaep_md:sha256",
        "cms",
        "AES-128-CBC",
        "OAEP-SHA256",
    ),
    pytest.param(
        "cms -binary -aes-256-gcm -outform DER", "cms", "AES-256-GCM", "PKCS#1 v1.5", marks=GCM
    ),
    pytest.param(
        "cms -binary -aes-128-gcm -outform PEM -stream",
        "cms-pem",
        "AES-128-GCM",
        "PKCS#1 v1.5",
        marks=GCM,
    ),
    pytest.param(
        "cms -binary -aes-256-gcm -outform DER -keyopt rsa_padding_mode:oaep",
        "cms",
        "AES-256-GCM",
        "OAEP-SHA1",
        marks=GCM,
    ),
]


@pytest.mark.parametrize(("command", "fmt", "cipher", "padding"), VARIANTS)
def test_variants_verify_and_restore(
    tmp_path: Path, small_dump: Path, certs: dict[str, Cert], command, fmt, cipher, padding
) -> None:
    c = certs["backup"]
    data = encrypt(small_dump, tmp_path / "db.sql.gz.enc", [c], command)
    rc, rep, _ = cli_json("verify", str(data), "--key", str(c.key))
    assert rc == 0, rep
    assert rep["formats"] == [fmt, "gzip", "mysql-sql"]
    key = next(x for x in rep["layers"] if x["layer"] == "key")
    assert key["details"]["padding"] == padding
    assert (
        "CN=backup" in key["details"]["recipient"]
        or "subjectKeyIdentifier" in (key["details"]["recipient"])
    )
    if "-keyid" in command:
        assert key["details"]["recipient_id_checked"] is True
    cipher_layer = next(x for x in rep["layers"] if x["layer"] == "cipher")
    assert cipher_layer["details"]["cipher"] == cipher
    assert cipher_layer["details"]["authenticated"] is cipher.endswith("GCM")
    if cipher.endswith("GCM"):
        assert "GCM tag verified" in cipher_layer["proved"]
    # Restored = what the producer's own decryption gives, then gunzip.
    out = tmp_path / "restored.sql"
    report = run_job(data, keys=[PemKey.from_file(c.key)], dest=out)
    assert report.ok, report.to_json()
    assert out.read_bytes() == small_dump.read_bytes()
    inform = {"cms": "DER", "cms-pem": "PEM", "smime": "SMIME"}[fmt]
    sh(
        f"openssl cms -decrypt -binary -inform {inform} -in {data} -inkey {c.key} | gzip -dc "
        f"| cmp - {out}",
        tmp_path,
    )


@pytest.mark.parametrize(
    "command",
    [
        "smime -binary -aes256 -outform DER",
        "cms -binary -aes256 -outform DER -stream -keyopt rsa_padding_mode:oaep",
        pytest.param("cms -binary -aes-256-gcm -outform PEM", marks=GCM),
    ],
)
def test_two_recipients_either_key_opens(
    tmp_path: Path, small_dump: Path, certs: dict[str, Cert], command: str
) -> None:
    data = encrypt(small_dump, tmp_path / "two.enc", [certs["other"], certs["backup"]], command)
    for name, index in (("backup", 2), ("other", 1)):
        rc, rep, _ = cli_json("verify", str(data), "--key", str(certs[name].key))
        assert rc == 0, rep
        key = next(x for x in rep["layers"] if x["layer"] == "key")
        assert key["details"]["recipient_index"] == index
        assert key["details"]["recipients"] == 2


@pytest.mark.parametrize(
    "command",
    [
        "smime -binary -aes256 -outform DER",
        "cms -binary -aes256 -outform PEM -keyopt rsa_padding_mode:oaep",
        pytest.param("cms -binary -aes-256-gcm -outform DER -stream", marks=GCM),
    ],
)
def test_wrong_key_names_the_key(
    tmp_path: Path, small_dump: Path, certs: dict[str, Cert], command: str
) -> None:
    data = encrypt(small_dump, tmp_path / "db.enc", [certs["backup"]], command)
    rc, rep, _ = cli_json("verify", str(data), "--key", str(certs["other"].key))
    assert rc == 1, rep
    assert rep is not None
    err = assert_failed(rep, obj=data, layer="key", kind="WrongKey")
    assert str(certs["other"].key) in err["message"]  # the key, by its file
    assert "CN=backup" in err["message"]  # and whom the envelope is for
    for backup_words in ("corrupt", "tampered", "truncated"):
        assert backup_words not in err["message"]
    src = next(x for x in rep["layers"] if x["layer"] == "source")
    assert src["status"] == "not reached"  # decided before the download


def test_key_of_another_size_is_not_tried(
    tmp_path: Path, small_dump: Path, certs: dict[str, Cert]
) -> None:
    data = encrypt(
        small_dump, tmp_path / "db.enc", [certs["backup"]], "smime -binary -aes256 -outform DER"
    )
    rc, rep, _ = cli_json("verify", str(data), "--key", str(certs["big"].key))
    assert rc == 1, rep
    assert rep is not None
    err = assert_failed(rep, obj=data, layer="key", kind="WrongKey")
    assert "RSA-3072" in err["message"] and "RSA-2048" in err["message"]


def test_no_key_says_what_to_give(
    tmp_path: Path, small_dump: Path, certs: dict[str, Cert], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No key held either: an empty data folder for the keyring-backed key store.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "empty-data"))
    data = encrypt(
        small_dump, tmp_path / "db.enc", [certs["backup"]], "smime -binary -aes256 -outform DER"
    )
    rc, rep, _ = cli_json("verify", str(data))
    assert rc == 2, rep
    assert rep is not None
    assert rep["error"]["kind"] == "KeyUnavailable"
    assert "--key" in rep["error"]["message"]


def test_appended_bytes_fail(tmp_path: Path, small_dump: Path, certs: dict[str, Cert]) -> None:
    for command in (
        "smime -binary -aes256 -outform DER",
        "cms -binary -aes256 -outform DER -stream",
    ):
        data = encrypt(small_dump, tmp_path / "db.enc", [certs["backup"]], command)
        longer = tmp_path / "longer.enc"
        longer.write_bytes(data.read_bytes() + b"\x00")
        rep = run_job(longer, keys=[PemKey.from_file(certs["backup"].key)])
        assert_failed(rep, obj=longer, layer="cipher", kind="IntegrityError")


def test_pem_with_text_after_end_line_fails(
    tmp_path: Path, small_dump: Path, certs: dict[str, Cert]
) -> None:
    data = encrypt(
        small_dump, tmp_path / "db.pem", [certs["backup"]], "cms -binary -aes256 -outform PEM"
    )
    bad = tmp_path / "bad.pem"
    bad.write_bytes(data.read_bytes() + b"more text\n")
    rep = run_job(bad, keys=[PemKey.from_file(certs["backup"].key)])
    assert_failed(rep, obj=bad, layer="cipher", kind="IntegrityError")


# --- damage: every byte of small envelopes --------------------------------------------


@pytest.fixture(scope="module")
def tiny_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mysql_like(tmp_path_factory.mktemp("tiny") / "dump.sql", rows=40)


DAMAGE = [
    "smime -binary -text -aes256 -outform DER",
    "cms -binary -aes128 -outform DER -stream -keyid -keyopt rsa_padding_mode:oaep",
    "cms -binary -aes256 -outform PEM",
    pytest.param("cms -binary -aes-256-gcm -outform DER", marks=GCM),
    pytest.param("cms -binary -aes-256-gcm -outform DER -stream", marks=GCM),
]


def _regions(data: bytes, fmt_der: bool) -> dict[str, range]:
    """Where the header's unprotected fields lie (DER only): for the report of what an
    accepted flip touched."""
    if not fmt_der:
        return {}
    r = BerReader(BytesReader(data))
    h = EnvelopeParser(r, None).parse()
    return {"content": range(h.content.offset, len(data))}


@pytest.mark.parametrize("command", DAMAGE)
def test_every_flipped_bit_is_rejected_or_harmless(
    tmp_path: Path, tiny_dump: Path, certs: dict[str, Cert], command: str
) -> None:
    """One bit flipped in every byte of the object: rejected with a typed error
    naming the object and layer, or the restored dump is byte-identical.

    What can pass, and why: CMS protects neither the recipient identifier (issuer
    name, serial, key identifier) nor, in EnvelopedData, the CBC IV; an IV bit lands
    on one plaintext bit of the first block, here gzip's MTIME/XFL/OS, which no
    layer can check. The GCM tag covers nonce and content: nothing in them passes."""
    data = encrypt(tiny_dump, tmp_path / "db.enc", [certs["backup"]], command)
    original = data.read_bytes()
    key = CachedKey(PemKey.from_file(certs["backup"].key))
    dump = tiny_dump.read_bytes()
    gcm = "gcm" in command
    der = "DER" in command
    content = _regions(original, der).get("content", range(0))
    accepted = []
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for i in range(len(original)):
        bad = tmp_path / "bad.enc"
        bad.write_bytes(flip(original, i, bit=i % 8))
        dest = out_dir / "restored.sql"
        rep = run_job(bad, keys=[key], dest=dest)
        if rep.ok:
            assert dest.read_bytes() == dump, f"flip at {i} restored different bytes"
            accepted.append(i)
            dest.unlink()
            continue
        assert_failed(rep, obj=bad, exit_code=1)
        assert_nothing_written(dest)
    if gcm:
        assert not [i for i in accepted if i in content], accepted
    # The content itself never passes a flip silently (gzip CRC, padding, GCM tag).
    assert not [i for i in accepted if i in content and i < len(original) - 64], accepted
    assert len(accepted) < 80, accepted


@pytest.mark.parametrize("command", DAMAGE)
def test_every_truncation_is_rejected(
    tmp_path: Path, tiny_dump: Path, certs: dict[str, Cert], command: str
) -> None:
    data = encrypt(tiny_dump, tmp_path / "db.enc", [certs["backup"]], command)
    original = data.read_bytes()
    key = CachedKey(PemKey.from_file(certs["backup"].key))
    dump = tiny_dump.read_bytes()
    for n in range(1, len(original)):
        cut = tmp_path / "cut.enc"
        cut.write_bytes(original[:n])
        dest = tmp_path / "restored.sql"
        rep = run_job(cut, keys=[key], dest=dest)
        if rep.ok:
            # Only blank space after a PEM END line may go.
            assert original[n:].strip() == b"" and "PEM" in command, n
            assert dest.read_bytes() == dump
            dest.unlink()
            continue
        assert_failed(rep, obj=cut, exit_code=1)
        assert_nothing_written(dest)


def test_damage_in_the_recipient_info_of_an_oaep_envelope(
    tmp_path: Path, tiny_dump: Path, certs: dict[str, Cert]
) -> None:
    """A flip inside the wrapped content key: OAEP fails for the right key, and the
    message still names the key (it cannot tell a damaged key blob from another key)."""
    data = encrypt(
        tiny_dump,
        tmp_path / "db.enc",
        [certs["backup"]],
        "cms -binary -aes256 -outform DER -keyopt rsa_padding_mode:oaep",
    )
    original = data.read_bytes()
    r = BerReader(BytesReader(original))
    h = EnvelopeParser(r, None).parse()
    wrapped = h.recipients[0].encrypted_key
    at = original.index(wrapped) + 100
    bad = tmp_path / "bad.enc"
    bad.write_bytes(flip(original, at))
    rep = run_job(bad, keys=[PemKey.from_file(certs["backup"].key)])
    err = assert_failed(rep, obj=bad, layer="key", kind="WrongKey")
    assert "damaged" in err["message"]


# --- through S3 (moto) ----------------------------------------------------------------


def test_cms_backup_from_a_versioned_bucket(
    moto_s3: Bucket, tmp_path: Path, small_dump: Path, certs: dict[str, Cert]
) -> None:
    good = encrypt(
        small_dump,
        tmp_path / "good.enc",
        [certs["backup"]],
        "smime -binary -text -aes256 -outform DER",
    )
    key = "mysql/db.sql.gz.enc"
    v1 = moto_s3.put(key, good)
    damaged = bytearray(good.read_bytes())
    damaged[len(damaged) // 2] ^= 0x10
    v2 = moto_s3.put(key, bytes(damaged))
    args = [
        moto_s3.uri(key),
        "--endpoint-url",
        moto_s3.endpoint,
        "--json",
        "--key",
        str(certs["backup"].key),
    ]
    r = sealcheck("verify", *args, "--version-id", v1 or "")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = r.json()
    assert rep["formats"] == ["cms", "gzip", "mysql-sql"]
    assert rep["source"]["version_id"] == v1
    r = sealcheck("verify", *args, "--version-id", v2 or "")
    assert r.returncode == 1, r.stdout
    out = tmp_path / "restored.sql"
    r = sealcheck("restore", *args, "--version-id", v1 or "", "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.read_bytes() == small_dump.read_bytes()

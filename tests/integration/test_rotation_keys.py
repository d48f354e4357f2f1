"""Where the old key is held, and OAEP (issue 13): the old key on a SoftHSM2 token and in
custody (a real gnome-keyring), and backups whose key is wrapped with OAEP, each rotated
on a versioned moto bucket and then read with the new key alone, by Sealcheck and by the
plain openssl commands a runbook would use."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

from fixtures.common import run_cli
from fixtures.pipelines import Backup, RsaKey, securecircle, sh
from fixtures.rotation import PREFIX, fetch, links, rotate, rotate_keys, secret_of
from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import Bucket


def verify_all(bucket: Bucket, versions: list[tuple[str, str]], key: Path) -> None:
    for data_key, version in versions:
        r = sealcheck(
            "verify", bucket.uri(data_key), "--version-id", version, "--key", str(key),
            "--endpoint-url", bucket.endpoint, "--no-history",
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr


def upload_runs(bucket: Bucket, backups: list[Backup]) -> list[tuple[str, str]]:
    """Each backup uploaded as the producer does (data, then its key): (data, version)."""
    out = []
    for b in backups:
        ids = bucket.put_backup(PREFIX, b)
        out.append((PREFIX + b.data.name, str(ids[PREFIX + b.data.name])))
    return out


def test_old_key_on_a_token(
    moto_s3: Bucket, softhsm, tmp_path: Path, other_rsa_key: RsaKey, small_dump: Path
) -> None:
    """The producer wrapped for a key that now sits on a token: the run logs in once with
    the PIN file and unwraps on the token."""
    tok = softhsm.keys["rsakey"]
    versions = upload_runs(
        moto_s3, [securecircle(small_dump, tmp_path / f"r{n}", tok.rsa, name="5") for n in (1, 2)]
    )
    pin = softhsm.pin_file(tmp_path)
    r = rotate(
        "run", moto_s3, "--from", tok.uri(), "--to", str(other_rsa_key.private), "--versions",
        "all", "--pkcs11-module", softhsm.module, "--pin-file", str(pin), "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    report = r.json()
    assert report["counts"] == {"done": 2}
    assert {v["opened_with"] for v in report["versions"]} == {"PKCS#11 token 'backup' key 'rsakey'"}
    assert report["old_keys"][0]["spki_sha256"] == report["versions"][0]["old_key_fingerprint"]
    verify_all(moto_s3, versions, other_rsa_key.private)


def test_old_key_in_custody(
    keyring_session, moto_s3: Bucket, tmp_path: Path, rsa_key: RsaKey, other_rsa_key: RsaKey,
    small_dump: Path,
) -> None:  # fmt: skip
    """The old key imported into custody (OS keyring + encrypted file): ``--from
    keyring:NAME``, and with no --from at all the held keys are tried."""
    name = f"old{os.getpid()}{tmp_path.name[-6:]}".replace("_", "")
    env = {**os.environ, **keyring_session.env}
    imp = run_cli("key", "import", str(rsa_key.private), "--name", name, env=env)
    assert imp.returncode == 0, imp.stderr
    try:
        versions = upload_runs(moto_s3, [securecircle(small_dump, tmp_path / "a", rsa_key)])
        common = ("--endpoint-url", moto_s3.endpoint, "--to", str(other_rsa_key.private))
        plan = run_cli(
            "rotate", "plan", moto_s3.uri(PREFIX), *common, "--json", env=env
        )  # no --from: every held key
        assert plan.returncode == 0, plan.stdout + plan.stderr
        (v,) = json.loads(plan.stdout)["versions"]
        assert v["opened_with"] == f"keyring:{name}" and v["result"] == "planned"
        r = run_cli(
            "rotate", "run", moto_s3.uri(PREFIX), *common, "--from", f"keyring:{name}",
            "--json", env=env,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["counts"] == {"done": 1}
    finally:
        run_cli("key", "remove", name, "--yes", env=env)
    verify_all(moto_s3, versions, other_rsa_key.private)


def oaep_backup(dump: Path, out: Path, key: RsaKey, name: str) -> Backup:
    """SecureCircle's pipeline with the secret wrapped by ``openssl pkeyutl`` in OAEP
    (OpenSSL's default OAEP digest: SHA-1)."""
    out.mkdir(parents=True)
    data, wrapped = out / f"{name}.sql.gz", out / f"{name}.sql.gz.key"
    q = shlex.quote
    sh(
        f"secret=$(openssl rand -base64 32)\n"
        f"gzip -c {q(str(dump))} | openssl enc -aes-256-cbc -md md5 -pass pass:$secret "
        f"2>/dev/null > {q(str(data))}\n"
        f"printf '%s' \"$secret\" | openssl pkeyutl -encrypt -pubin -inkey {q(str(key.public))} "
        f"-pkeyopt rsa_padding_mode:oaep -out {q(str(wrapped))}",
        out,
    )
    return Backup(data, wrapped)


def pkeyutl_decrypt(key: RsaKey, body: bytes, tmp: Path, *opts: str) -> bytes:
    f = tmp / "link.bin"
    f.write_bytes(body)
    return subprocess.run(
        ["openssl", "pkeyutl", "-decrypt", "-inkey", str(key.private), "-in", str(f),
         "-pkeyopt", "rsa_padding_mode:oaep", *opts],
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip


def test_an_oaep_backup_rotates_keeping_oaep(
    moto_s3: Bucket, tmp_path: Path, rsa_key: RsaKey, other_rsa_key: RsaKey, small_dump: Path
) -> None:
    b = oaep_backup(small_dump, tmp_path / "o", rsa_key, "31")
    assert b.wrapped_key is not None
    secret = pkeyutl_decrypt(rsa_key, b.wrapped_key.read_bytes(), tmp_path)
    versions = upload_runs(moto_s3, [b])
    r = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    (v,) = r.json()["versions"]
    assert v["padding"] == "OAEP-SHA1" and r.json()["padding"] == "kept as each original"
    body = fetch(moto_s3, v["new_key_object"], v["new_key_version_id"])
    assert pkeyutl_decrypt(other_rsa_key, body, tmp_path) == secret
    verify_all(moto_s3, versions, other_rsa_key.private)


def test_oaep_option_switches_a_pkcs1_backup_to_oaep_sha256(
    moto_s3: Bucket, tmp_path: Path, rsa_key: RsaKey, other_rsa_key: RsaKey, small_dump: Path
) -> None:
    b = securecircle(small_dump, tmp_path / "p", rsa_key, name="32")
    assert b.wrapped_key is not None
    versions = upload_runs(moto_s3, [b])
    r = rotate_keys("run", moto_s3, rsa_key, other_rsa_key, "--oaep")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: --oaep" in r.stdout and "rsautl -decrypt' no longer opens" in r.stdout
    ((key, version),) = links(moto_s3)
    body = fetch(moto_s3, key, version)
    sha256 = ("-pkeyopt", "rsa_oaep_md:sha256")
    assert pkeyutl_decrypt(other_rsa_key, body, tmp_path, *sha256) == secret_of(
        rsa_key, b.wrapped_key
    )
    # The old runbook's command no longer gives the data key back. It usually fails, but
    # an OAEP block parses as PKCS#1 v1.5 padding about once in 256 (its second byte 0x02),
    # and then `rsautl` prints garbage instead of failing.
    try:
        old = secret_of(other_rsa_key, tmp_path / "link.bin")
    except subprocess.CalledProcessError:
        old = None
    assert old != secret_of(rsa_key, b.wrapped_key)
    verify_all(moto_s3, versions, other_rsa_key.private)

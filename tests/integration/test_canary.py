"""G1/G2: secrets never reach logs, temp files, the data folder, argv or environments.

Every flow runs with known canary secrets and DEBUG logging; then stdout,
stderr, the private TMPDIR, HOME (data folder, gpg homes) are searched for the
canaries in raw, hex and base64 form: 0 hits.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.pipelines import (
    GPG_HOMES,
    dpb587_gpg,
    export_secret_key,
    gpg_home_with_key,
    make_rsa_key,
    sh,
)
from sealcheck.core.rotation.journal import CRASH_ENV

DEK = "CANARYdek0123456789abcdefCANARYdek"  # the data key inside the wrapped key
PEM_PW = "CANARYpempassphrase42"
PASSFILE = "CANARYsymmetricpass77"
GPG_PW = "CANARYgpgkeypassphrase19"  # of a --gpg-key


def forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"=")]


def derived_key_hexes(secret: str, salt: bytes) -> list[bytes]:
    # EVP_BytesToKey-SHA256 as openssl uses it: the AES key must not leak either.
    d1 = hashlib.sha256(secret.encode() + salt).digest()
    return [d1.hex().encode(), d1.hex().upper().encode()]


def scan(paths: list[Path], blobs: list[bytes], needles: list[bytes]) -> list[str]:
    hits = []
    for blob in blobs:
        hits += [f"output:{n[:12]!r}" for n in needles if n in blob]
    for root in paths:
        for p in root.rglob("*"):
            if p.is_file() and not p.is_symlink():
                try:
                    data = p.read_bytes()
                except OSError:
                    continue
                hits += [f"{p}:{n[:12]!r}" for n in needles if n in data]
    return hits


@pytest.fixture
def canary_env(tmp_path: Path, keyring_session) -> dict[str, str]:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    return {**os.environ, "TMPDIR": str(tmpdir)}


def test_no_canary_anywhere(tmp_path: Path, canary_env: dict[str, str], small_dump: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    key = make_rsa_key(work, "canary", 2048, passphrase=PEM_PW)
    data = work / "db.sql.gz"
    wrapped = work / "db.sql.gz.key"
    sh(
        f"gzip -c {shlex.quote(str(small_dump))} | openssl enc -aes-256-cbc -pass pass:{DEK} "
        f"> {data}\nprintf %s {DEK} | openssl rsautl -encrypt -pubin -inkey {key.public} -out {wrapped}",
        work,
    )
    salt = data.read_bytes()[8:16]
    pwfile = tmp_path / "secrets" / "pem-pw"
    pwfile.parent.mkdir()
    pwfile.write_text(PEM_PW + "\n")
    symm = tmp_path / "secrets" / "symm"
    symm.write_text(PASSFILE + "\n")
    sym_backup = work / "sym.sql.gz.aes256"
    sh(f"gzip -c {small_dump} | openssl enc -aes-256-cbc -pass file:{symm} > {sym_backup}", work)
    home = gpg_home_with_key(work)
    gpg_backup = dpb587_gpg(small_dump, work / "gpg", home)
    asc = export_secret_key(home, tmp_path / "secrets" / "gpg.asc")

    env = canary_env
    outs: list[bytes] = []
    runs = [
        ("verify", str(data), "--key", str(key.private), "--key-passphrase-file", str(pwfile)),
        (
            "restore",
            str(data),
            "-o",
            str(tmp_path / "out.sql"),
            "--key",
            str(key.private),
            "--key-passphrase-file",
            str(pwfile),
        ),
        ("verify", str(sym_backup), "--passphrase-file", str(symm)),
        ("verify", str(gpg_backup.data), "--gpg-key", str(asc)),
        (
            "key",
            "import",
            str(key.private),
            "--name",
            "canary",
            "--key-passphrase-file",
            str(pwfile),
        ),
        ("verify", str(data), "--key", "keyring:canary", "--json"),
        # A failing flow too: errors must not carry secrets either.
        ("verify", str(data), "--key", str(key.private), "--key-passphrase-file", str(symm)),
    ]
    try:
        for args in runs:
            r = run_cli("--debug", *args, env=env)
            outs += [r.stdout.encode(), r.stderr.encode()]
    finally:
        run_cli("key", "remove", "canary", "--yes", env=env)
    needles = forms(DEK) + forms(PEM_PW) + forms(PASSFILE) + derived_key_hexes(DEK, salt)
    hits = scan([Path(env["TMPDIR"]), Path(env["HOME"])], outs, needles)
    assert hits == []
    # The scanner itself works: it finds the canaries where the test put them.
    assert scan([tmp_path / "secrets"], [], needles)
    # The restored plaintext is there, the decrypted secret is not.
    assert (tmp_path / "out.sql").read_bytes() == small_dump.read_bytes()


PIN = "CANARYpin8642"


def private_token(work: Path, env: dict[str, str], label: str, key: Path) -> dict[str, str]:
    """A SoftHSM2 token of its own (invisible to other tests) whose PIN is the canary,
    holding ``key`` as object "k"; the environment that reaches it."""
    pk8 = work / f"{label}.pk8"
    (work / "tokens").mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\n")
    env = {**env, "SOFTHSM2_CONF": str(conf)}
    sh(
        f"softhsm2-util --init-token --free --label {label} --so-pin 87654321 --pin {PIN} >/dev/null\n"
        f"openssl pkcs8 -topk8 -nocrypt -in {key} -out {pk8}\n"
        f"softhsm2-util --import {pk8} --token {label} --label k --id 0a --pin {PIN} >/dev/null\n"
        f"rm -f {pk8}",
        work,
        env,
    )
    return env


def test_no_pin_canary_anywhere(
    tmp_path: Path, canary_env: dict[str, str], softhsm, small_dump: Path
) -> None:
    """A token whose PIN is a canary: verify (right PIN), a wrong-PIN run and key list,
    all with --debug; the PIN is in none of the outputs, temp files or HOME."""
    work = tmp_path / "work"
    key = make_rsa_key(work, "tok", 2048)
    env = private_token(work, canary_env, "canarytok", key.private)
    from fixtures.pipelines import securecircle

    b = securecircle(small_dump, work / "s3", key)
    pins = tmp_path / "secrets"
    pins.mkdir()
    good = pins / "pin"
    good.write_text(PIN + "\n")
    bad = pins / "bad"
    bad.write_text(PIN + "x\n")
    uri = "pkcs11:token=canarytok;object=k"
    outs: list[bytes] = []
    for args, rc in (
        (("verify", str(b.data), "--key", uri, "--pin-file", str(good)), 0),
        (("verify", str(b.data), "--key", uri, "--pin-file", str(bad)), 2),
        (("key", "list"), 0),
    ):
        r = run_cli("--debug", *args, "--pkcs11-module", softhsm.module, env=env)
        assert r.returncode == rc, r.stdout + r.stderr
        outs += [r.stdout.encode(), r.stderr.encode()]
    needles = forms(PIN)
    assert scan([Path(env["TMPDIR"]), Path(env["HOME"])], outs, needles) == []
    assert scan([pins], [], needles)  # the scanner finds it where it is


def test_no_canary_in_a_rotation(
    tmp_path: Path, canary_env: dict[str, str], softhsm, small_dump: Path, moto_s3
) -> None:
    """Key rotation (issue 13) with --debug: the old key a passphrase-protected PEM, the
    new key on a token whose PIN is a canary, a data key that is a canary. None of them
    in the outputs, the journal, the report, temp files or HOME; the rotated backup then
    verifies with the token key alone."""
    work = tmp_path / "work"
    old = make_rsa_key(work, "old", 2048, passphrase=PEM_PW)
    new = make_rsa_key(work, "new", 2048)
    env = private_token(work, canary_env, "rottok", new.private)
    new.private.unlink()  # the new key is on the token only
    data, wrapped = work / "db.sql.gz", work / "db.sql.gz.key"
    sh(
        f"gzip -c {shlex.quote(str(small_dump))} | openssl enc -aes-256-cbc -pass pass:{DEK} "
        f"> {data}\nprintf %s {DEK} | openssl rsautl -encrypt -pubin -inkey {old.public} -out {wrapped}",
        work,
    )
    salt = data.read_bytes()[8:16]
    moto_s3.put("db/db.sql.gz", data)
    moto_s3.put("db/db.sql.gz.key", wrapped)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "pin").write_text(PIN + "\n")
    (secrets / "pem-pw").write_text(PEM_PW + "\n")
    report = tmp_path / "report" / "rotation.json"
    report.parent.mkdir()
    uri = "pkcs11:token=rottok;object=k"
    common = ("--endpoint-url", moto_s3.endpoint, "--pkcs11-module", softhsm.module)
    outs: list[bytes] = []
    for args in (
        ("rotate", "plan", moto_s3.uri("db/"), "--to", uri, "--from", str(old.private)),
        (
            "rotate",
            "run",
            moto_s3.uri("db/"),
            "--to",
            uri,
            "--from",
            str(old.private),
            "--report",
            str(report),
        ),
        ("verify", moto_s3.uri("db/db.sql.gz"), "--key", uri, "--no-history"),
    ):
        r = run_cli(
            "--debug",
            *args,
            *common,
            "--pin-file",
            str(secrets / "pin"),
            *(["--key-passphrase-file", str(secrets / "pem-pw")] if args[0] == "rotate" else []),
            env=env,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        outs += [r.stdout.encode(), r.stderr.encode()]
    assert "challenge decrypted by the new private key" in report.read_text()
    needles = forms(DEK) + forms(PEM_PW) + forms(PIN) + derived_key_hexes(DEK, salt)
    data_dir = Path(os.environ["SEALCHECK_DATA_DIR"])
    assert list(data_dir.glob("rotations/*.sqlite3"))  # the journal is where it is scanned
    roots = [Path(env["TMPDIR"]), Path(env["HOME"]), data_dir, report.parent]
    assert scan(roots, outs, needles) == []
    assert scan([secrets], [], needles)


def test_no_session_key_in_a_gpg_rotation(
    tmp_path: Path, canary_env: dict[str, str], small_dump: Path, moto_s3
) -> None:
    """Rotating a gpg backup (issue 13: the session key recovered through gpg's status
    pipe) with --debug: the session key, in any form, is nowhere in the outputs, the
    journal, the report, temp files or HOME."""
    work = tmp_path / "work"
    old_home = gpg_home_with_key(work / "old", "old@example.com")
    new_home = gpg_home_with_key(work / "new", "new@example.com")
    old_key = export_secret_key(old_home, work / "old.asc", "old@example.com")
    new_key = export_secret_key(new_home, work / "new.asc", "new@example.com")
    backup = dpb587_gpg(small_dump, work / "g", old_home, email="old@example.com")
    status = subprocess.run(
        ["gpg", "--batch", "--homedir", str(old_home), "--status-fd", "1",
         "--show-session-key", "--output", "/dev/null", "--decrypt", str(backup.data)],
        capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    (line,) = [ln for ln in status.splitlines() if "SESSION_KEY" in ln]
    session_key = bytes.fromhex(line.split()[2].split(":")[1])
    moto_s3.put("db/db.sql.gz.enc", backup.data)
    report = tmp_path / "report" / "rotation.json"
    report.parent.mkdir()
    r = run_cli(
        "--debug", "rotate", "run", moto_s3.uri("db/"), "--to", str(new_key),
        "--gpg-key", str(old_key), "--report", str(report), "--endpoint-url", moto_s3.endpoint,
        env=canary_env,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"envelope": "gpg"' in report.read_text()
    needles = [session_key, session_key.hex().encode(), session_key.hex().upper().encode(),
               base64.b64encode(session_key).rstrip(b"=")]  # fmt: skip
    data_dir = Path(os.environ["SEALCHECK_DATA_DIR"])
    roots = [Path(canary_env["TMPDIR"]), Path(canary_env["HOME"]), data_dir, report.parent]
    assert scan(roots, [r.stdout.encode(), r.stderr.encode()], needles) == []


def test_no_gpg_passphrase_in_a_resumed_gpg_rotation(
    tmp_path: Path, canary_env: dict[str, str], small_dump: Path, moto_s3
) -> None:
    """A gpg rotation with a passphrase-protected --gpg-key, killed after its first
    version and resumed with ``--resume`` and the passphrase file alone (the journal says
    which key): the passphrase, in any form, is nowhere in the outputs, the journal, temp
    files or HOME."""
    work = tmp_path / "work"
    home = work / "gnupg"
    home.mkdir(parents=True, mode=0o700)
    GPG_HOMES.append(home)
    gpg = ["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback",
           "--passphrase", GPG_PW]  # fmt: skip
    # One RSA key that encrypts (no subkey): gpg -e uses it, gpg -d asks its passphrase.
    subprocess.run([*gpg, "--quick-gen-key", "Old <old@example.com>", "rsa2048",
                    "cert,sign,encr", "never"], capture_output=True, check=True)  # fmt: skip
    old_asc = work / "old.asc"
    old_asc.write_bytes(subprocess.run([*gpg, "--armor", "--export-secret-keys"],
                                       capture_output=True, check=True).stdout)  # fmt: skip
    new_home = gpg_home_with_key(work / "new", "new@example.com")
    new_asc = export_secret_key(new_home, work / "new.asc", "new@example.com")
    for name in ("a.sql.gz.enc", "b.sql.gz.enc"):
        backup = dpb587_gpg(small_dump, work / name, home, email="old@example.com", name=name)
        moto_s3.put(f"db/{name}", backup.data)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "gpg-pw").write_text(GPG_PW + "\n")
    common = ("--debug", "rotate", "run", moto_s3.uri("db/"), "--to", str(new_asc),
              "--endpoint-url", moto_s3.endpoint, "--versions", "all", "--workers", "1",
              "--gpg-passphrase-file", str(secrets / "gpg-pw"))  # fmt: skip
    killed = run_cli(*common, "--gpg-key", str(old_asc), env={**canary_env, CRASH_ENV: "done:1"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    r = run_cli(*common, "--resume", "--json", env=canary_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [v["result"] for v in json.loads(r.stdout)["versions"]] == ["done", "done"]
    data_dir = Path(os.environ["SEALCHECK_DATA_DIR"])
    assert list(data_dir.glob("rotations/*.sqlite3"))  # the journal is where it is scanned
    outs = [killed.stdout.encode(), killed.stderr.encode(), r.stdout.encode(), r.stderr.encode()]
    roots = [Path(canary_env["TMPDIR"]), Path(canary_env["HOME"]), data_dir]
    assert scan(roots, outs, forms(GPG_PW)) == []
    assert scan([secrets], [], forms(GPG_PW))

"""Rotating to (and from) passphrase-protected OpenPGP secret keys, with the real gpg.

The new key's proof of possession ran ``gpg --decrypt`` with no passphrase and an
environment of its own (PATH and HOME only): with ``--batch`` gpg could not unlock a
protected new key, so the proof failed ("no proof of possession") although the user
gave the right passphrase with --key-passphrase-file. It now goes through the gpg reader
that opens gpg backups (passphrase on a pipe, gpg_env), and a wrong passphrase says so.
A wrong --gpg-passphrase-file for the old key is named as such too, not "no held key".

Keys are made here by gpg itself (``--quick-gen-key`` with the passphrase on fd 0), in
private GNUPGHOMEs whose agents are stopped at the end (GPG_HOMES)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.pipelines import GPG_HOMES, dpb587_gpg
from fixtures.restoretest import ProcWatcher
from fixtures.rotation import PREFIX, all_object_versions, fetch, links, producer_objects, rotate
from fixtures.s3scenarios import sealcheck
from fixtures.s3servers import Bucket
from sealcheck.core.decrypt.gpg.reader import gpg_env
from sealcheck.core.errors import ExitCode, PassphraseNeeded
from sealcheck.core.keys.prompt import secret_once
from sealcheck.core.keys.spec import KeyContext
from sealcheck.core.rotation.newkey import (
    NoProofOfPossession,
    WrongNewKeyPassphrase,
    open_new_key,
    prove_possession,
)
from sealcheck.core.rotation.wire import PKCS1V15

NEW_PW = "new-key-passphrase-Qx71"
OLD_PW = "old-key-passphrase-Lm42"


@dataclass
class Locked:
    old_home: Path
    old_secret: Path  # protected with OLD_PW: one RSA key that encrypts
    new_secret: Path  # protected with NEW_PW: a primary key and an encryption subkey
    open_secret: Path  # a new key without protection
    new_pw: Path
    old_pw: Path
    wrong_pw: Path


def gpg_key(home: Path, uid: str, passphrase: str, *, subkey: bool) -> Path:
    """A gpg home holding one RSA-2048 key made by gpg (an empty passphrase: none), and
    its armored secret export."""
    home.mkdir(parents=True, mode=0o700)
    GPG_HOMES.append(home)
    gpg = ["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback",
           "--passphrase-fd", "0"]  # fmt: skip
    usage = "cert,sign" if subkey else "cert,sign,encr"
    subprocess.run([*gpg, "--quick-gen-key", uid, "rsa2048", usage, "never"],
                   input=passphrase.encode(), capture_output=True, check=True)  # fmt: skip
    if subkey:
        colons = subprocess.run(["gpg", "--homedir", str(home), "--with-colons", "--list-keys"],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
        fpr = next(ln.split(":")[9] for ln in colons.splitlines() if ln.startswith("fpr:"))
        subprocess.run([*gpg, "--quick-add-key", fpr, "rsa2048", "encr", "never"],
                       input=passphrase.encode(), capture_output=True, check=True)  # fmt: skip
    out = home.parent / f"{home.name}.sec.asc"
    out.write_bytes(subprocess.run([*gpg, "--armor", "--export-secret-keys"],
                                   input=passphrase.encode(), capture_output=True,
                                   check=True).stdout)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Locked]:
    root = tmp_path_factory.mktemp("gpg-locked")
    old_secret = gpg_key(root / "old", "Old <old@example.com>", OLD_PW, subkey=False)
    new_secret = gpg_key(root / "new", "New <new@example.com>", NEW_PW, subkey=True)
    open_secret = gpg_key(root / "open", "Open <open@example.com>", "", subkey=True)
    pws = root / "pw"
    pws.mkdir()
    for name, pw in (("new", NEW_PW), ("old", OLD_PW), ("wrong", "not-the-passphrase")):
        (pws / name).write_text(pw + "\n")
    yield Locked(root / "old", old_secret, new_secret, open_secret,
                 pws / "new", pws / "old", pws / "wrong")  # fmt: skip
    for home in ("old", "new", "open"):
        subprocess.run(["gpgconf", "--homedir", str(root / home), "--kill", "all"],
                       capture_output=True, check=False)  # fmt: skip


@dataclass
class Spawned:
    argv: list[str]
    env: dict[str, str] | None


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[Spawned]:
    """Every process Sealcheck starts in this process (subprocess.run goes through Popen),
    with its argv and environment; the real program still runs."""
    seen: list[Spawned] = []
    real = subprocess.Popen.__init__

    def spy(self, args, *a, **kw):  # type: ignore[no-untyped-def]
        seen.append(Spawned([str(x) for x in args], kw.get("env")))
        real(self, args, *a, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", spy)
    return seen


def no_secret_passed(seen: list[Spawned], *secrets: str) -> None:
    for s in seen:
        for secret in secrets:
            assert not any(secret in a for a in s.argv), s.argv
            assert s.env is None or not any(secret in v for v in s.env.values())


def context(pw_file: Path | None) -> KeyContext:
    return KeyContext(pem_passphrase=secret_once("", None, file=pw_file, what="passphrase file"))


# --- the proof itself (in process) --------------------------------------------------------


def test_the_proof_unlocks_a_protected_new_key_through_a_pipe(
    locked: Locked, spawned: list[Spawned], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reproduction: with the right passphrase given, the proof failed with
    NoProofOfPossession and gpg ran with PATH and HOME only. Now it passes; gpg gets the
    passphrase on a pipe (loopback pinentry), never argv nor the environment, and runs in
    gpg_env()'s environment (a GNUPGHOME of the user's passed, LC_ALL=C)."""
    monkeypatch.setenv("GNUPGHOME", str(locked.old_home))  # --homedir wins over it
    new = open_new_key(str(locked.new_secret), context(locked.new_pw), public_only=False)
    assert new.gpg is not None and new.gpg.passphrase is not None
    assert prove_possession(new, PKCS1V15) is True
    decrypts = [s for s in spawned if "--decrypt" in s.argv]
    assert len(decrypts) == 1
    (run,) = decrypts
    assert run.env == gpg_env() and run.env["LC_ALL"] == "C" and "GNUPGHOME" in run.env
    fd = run.argv[run.argv.index("--passphrase-fd") + 1]
    assert fd.isdigit() and "--pinentry-mode" in run.argv and "loopback" in run.argv
    assert all(s.env == gpg_env() for s in spawned if Path(s.argv[0]).name == "gpg")
    no_secret_passed(spawned, NEW_PW)


def test_a_wrong_passphrase_for_the_new_key_is_named_as_such(locked: Locked) -> None:
    new = open_new_key(str(locked.new_secret), context(locked.wrong_pw), public_only=False)
    with pytest.raises(WrongNewKeyPassphrase) as caught:
        prove_possession(new, PKCS1V15)
    err = caught.value
    assert not isinstance(err, NoProofOfPossession)
    assert err.exit_code is ExitCode.USAGE
    assert "does not open the new OpenPGP secret key" in err.message()
    assert str(locked.new_secret) in err.message() and "not-the" not in err.message()


def test_no_passphrase_for_a_protected_new_key_says_which_to_give(locked: Locked) -> None:
    with pytest.raises(PassphraseNeeded) as caught:
        open_new_key(str(locked.new_secret), context(None), public_only=False)
    assert "--key-passphrase-file" in caught.value.message()


def test_an_unprotected_new_key_asks_for_no_passphrase(locked: Locked) -> None:
    asked: list[str] = []

    def ask() -> bytes | None:
        asked.append("asked")
        return b"anything"

    new = open_new_key(str(locked.open_secret), KeyContext(pem_passphrase=ask), public_only=False)
    assert prove_possession(new, PKCS1V15) is True
    assert asked == []


# --- the CLI, against moto_server --------------------------------------------------------


def upload_two(bucket: Bucket, tmp: Path, locked: Locked, dump: Path) -> list[bytes]:
    out = []
    for name in ("a.sql.gz.enc", "b.sql.gz.enc"):
        backup = dpb587_gpg(dump, tmp / name, locked.old_home, email="old@example.com", name=name)
        data = backup.data.read_bytes()
        bucket.put(f"{PREFIX}{name}", data)
        out.append(data)
    return out


def run_args(locked: Locked, new_pw: Path, old_pw: Path) -> list[str]:
    return ["--to", str(locked.new_secret), "--key-passphrase-file", str(new_pw),
            "--gpg-key", str(locked.old_secret), "--gpg-passphrase-file", str(old_pw),
            "--versions", "all", "--json"]  # fmt: skip


def gpg_decrypt(secret: Path, pw_file: Path, data: bytes, home: Path) -> bytes:
    """``gpg --decrypt`` in a fresh GNUPGHOME holding only ``secret`` (protected)."""
    home.mkdir(mode=0o700)
    GPG_HOMES.append(home)
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    subprocess.run([*gpg, "--import", str(secret)], capture_output=True, check=True)
    r = subprocess.run([*gpg, "--pinentry-mode", "loopback", "--passphrase-file", str(pw_file),
                        "--decrypt"], input=data, capture_output=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def test_rotate_run_to_a_protected_new_key_from_a_protected_old_one(
    moto_s3: Bucket, tmp_path: Path, locked: Locked, small_dump: Path, spawned: list[Spawned]
) -> None:
    """``sealcheck rotate run`` with both keys protected, each passphrase from its file:
    every version rotated, and the rotated objects open with the new key alone (and its
    passphrase). No process it started had either passphrase in argv or environment."""
    originals = upload_two(moto_s3, tmp_path, locked, small_dump)
    r = rotate("run", moto_s3, *run_args(locked, locked.new_pw, locked.old_pw))
    assert r.returncode == 0, r.stdout + r.stderr
    rep = r.json()
    assert [v["result"] for v in rep["versions"]] == ["done", "done"]
    assert rep["new_key"]["proof_of_possession"].startswith("challenge decrypted")
    stored = [fetch(moto_s3, k, v) for k, v in links(moto_s3)]
    assert len(stored) == 2
    for n, body in enumerate(stored):
        original = next(o for o in originals if body.endswith(o))
        want = gpg_decrypt(locked.old_secret, locked.old_pw, original, tmp_path / f"o{n}")
        assert gpg_decrypt(locked.new_secret, locked.new_pw, body, tmp_path / f"n{n}") == want
    assert [s for s in spawned if "--passphrase-fd" in s.argv]
    no_secret_passed(spawned, NEW_PW, OLD_PW)
    assert NEW_PW not in r.stdout + r.stderr and OLD_PW not in r.stdout + r.stderr


def test_rotate_run_with_a_wrong_new_key_passphrase_writes_nothing(
    moto_s3: Bucket, tmp_path: Path, locked: Locked, small_dump: Path
) -> None:
    """Refused before any write (exit 2, naming the passphrase, not the proof)."""
    upload_two(moto_s3, tmp_path, locked, small_dump)
    before = all_object_versions(moto_s3)
    r = rotate("run", moto_s3, *run_args(locked, locked.wrong_pw, locked.old_pw))
    assert r.returncode == int(ExitCode.USAGE), r.stdout + r.stderr
    assert "does not open the new OpenPGP secret key" in r.stderr, r.stderr
    assert "proof of possession" not in r.stderr
    assert all_object_versions(moto_s3) == before  # not a link, not a probe, not a lock
    # The right passphrase then: the refused run left nothing in the way.
    again = rotate("run", moto_s3, *run_args(locked, locked.new_pw, locked.old_pw))
    assert again.returncode == 0, again.stdout + again.stderr
    assert [v["result"] for v in again.json()["versions"]] == ["done", "done"]


@pytest.mark.parametrize("old_pw", ["wrong", "none"])
def test_a_locked_old_key_is_named_in_each_version(
    moto_s3: Bucket, tmp_path: Path, locked: Locked, small_dump: Path, old_pw: str
) -> None:
    """The old key is the recipient but stays locked (a wrong --gpg-passphrase-file, or
    none): each version says so (it said "no held key recovers a session key ... give the
    old key with --gpg-key", which was given), and nothing is written."""
    upload_two(moto_s3, tmp_path, locked, small_dump)
    before = producer_objects(moto_s3)
    args = run_args(locked, locked.new_pw, locked.wrong_pw)
    if old_pw == "none":
        at = args.index("--gpg-passphrase-file")
        del args[at : at + 2]
    r = rotate("plan", moto_s3, *args)
    assert r.returncode == 1, r.stdout + r.stderr
    want = (
        "passphrase given for the OpenPGP secret key does not unlock it"
        if old_pw == "wrong"
        else f"{locked.old_secret} is passphrase-protected and no passphrase was given"
    )
    for v in r.json()["versions"]:
        assert v["result"] == "cannot"
        assert want in v["reason"] and "--gpg-passphrase-file" in v["reason"], v["reason"]
        assert "no held key" not in v["reason"]
    assert links(moto_s3) == [] and producer_objects(moto_s3) == before


def test_verify_with_a_locked_gpg_key_does_not_call_the_backup_corrupt(
    moto_s3: Bucket, tmp_path: Path, locked: Locked, small_dump: Path
) -> None:
    """The gpg reader (what the proof now uses) said "integrity check failed: corrupt or
    tampered" (exit 1) for a key left locked, by a wrong passphrase or none; it names the
    passphrase (exit 2)."""
    upload_two(moto_s3, tmp_path, locked, small_dump)
    common = ("verify", moto_s3.uri(f"{PREFIX}a.sql.gz.enc"), "--endpoint-url",
              moto_s3.endpoint, "--gpg-key", str(locked.old_secret), "--no-progress",
              "--no-history")  # fmt: skip
    for given, said in (
        (("--gpg-passphrase-file", str(locked.wrong_pw)), "does not unlock it"),
        ((), "passphrase-protected and no passphrase reached gpg"),
    ):
        r = sealcheck(*common, *given)
        assert r.returncode == int(ExitCode.USAGE), r.stdout + r.stderr
        out = r.stdout + r.stderr
        assert said in out and "corrupt" not in out, out
    ok = sealcheck(*common, "--gpg-passphrase-file", str(locked.old_pw))
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_no_passphrase_in_any_command_line_of_a_real_run(
    moto_s3: Bucket, tmp_path: Path, locked: Locked, small_dump: Path, proc_watcher: ProcWatcher
) -> None:
    """The CLI as a user runs it (a process of its own), /proc watched meanwhile: neither
    passphrase in any process's command line or environment."""
    upload_two(moto_s3, tmp_path, locked, small_dump)
    proc_watcher.secrets = [NEW_PW, OLD_PW]
    proc_watcher.start()
    r = sealcheck("rotate", "run", moto_s3.uri(PREFIX), "--endpoint-url", moto_s3.endpoint,
                  *run_args(locked, locked.new_pw, locked.old_pw), subprocess=True)  # fmt: skip
    proc_watcher.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert proc_watcher.scans > 0 and proc_watcher.hits == []
    assert any(Path(p).name == "gpg" for p in proc_watcher.processes_seen), (
        proc_watcher.processes_seen
    )

"""The built bundle (packaging/build.sh) works as shipped, outside the virtualenv:
``sealcheck --version``, a real ``verify`` of a backup made with openssl, the GUI started
offscreen, and the parts only a frozen build can lose (entry-point subcommands, the demo's
S3 server, the keyring and PKCS#11 backends).

The bundle is built once per session with ``./dev package`` unless dist/sealcheck/ is
newer than every source, or SEALCHECK_BUNDLE names an executable to test instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from fixtures.pipelines import RsaKey, securecircle
from sealcheck.core import __version__

# Building the bundle takes about two minutes: ./dev test runs these in its slow step.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "dist" / "sealcheck" / "sealcheck"
SOURCES = ("core", "gui", "resources", "packaging", "pyproject.toml")


def _newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        root = REPO / name
        files = [root] if root.is_file() else root.rglob("*")
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                newest = max(newest, f.stat().st_mtime)
    return newest


@pytest.fixture(scope="session")
def bundle() -> Path:
    override = os.environ.get("SEALCHECK_BUNDLE")
    if override:
        return Path(override)
    if BUNDLE.is_file() and BUNDLE.stat().st_mtime >= _newest_source():
        return BUNDLE
    r = subprocess.run(
        [str(REPO / "dev"), "package"], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, f"./dev package failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    assert BUNDLE.is_file()
    return BUNDLE


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment with empty config/data folders (not the user's)."""
    h = tmp_path / "home"
    h.mkdir()
    return {
        **os.environ,
        "HOME": str(h),
        "XDG_CONFIG_HOME": str(h / ".config"),
        "XDG_DATA_HOME": str(h / ".local" / "share"),
    }


def run(bundle: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 120):
    r = subprocess.run(
        [str(bundle), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_version(bundle: Path) -> None:
    r = run(bundle, "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"sealcheck {__version__}"


def test_gui_and_demo_subcommands_are_registered(bundle: Path) -> None:
    # They come from the "sealcheck.commands" entry points: the bundled dist-info.
    r = run(bundle, "--help")
    assert r.returncode == 0
    commands = r.stdout.split("options:")[0]
    for name in ("verify", "restore", "key", "gui", "demo"):
        assert re.search(rf"^\s+{name}\s", commands, re.M), r.stdout


def test_verify_a_securecircle_backup(
    bundle: Path, rsa_key: RsaKey, small_dump: Path, tmp_path: Path, home: dict[str, str]
) -> None:
    b = securecircle(small_dump, tmp_path / "s3", rsa_key)
    r = run(bundle, "verify", str(b.data), "--key", str(rsa_key.private), "--json", env=home)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True
    # Every native layer ran inside the bundle: cryptography, gzip (isal), the dump check.
    assert "gzip" in " ".join(report["formats"])

    # A flipped bit is still caught, with the stable exit code.
    bad = tmp_path / "bad" / b.data.name
    bad.parent.mkdir()
    blob = bytearray(b.data.read_bytes())
    blob[len(blob) // 2] ^= 0x10
    bad.write_bytes(bytes(blob))
    r = run(
        bundle, "verify", str(bad), "--wrapped-key", str(b.wrapped_key),
        "--key", str(rsa_key.private), env=home,
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAILED" in r.stdout


def test_gui_starts_offscreen_and_closes(bundle: Path, home: dict[str, str]) -> None:
    env = {**home, "QT_QPA_PLATFORM": "offscreen"}
    r = run(bundle, "gui", "--smoke-test", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "smoke-test: main window shown" in r.stdout


def test_demo_headless(bundle: Path, home: dict[str, str]) -> None:
    for tool in ("openssl", "gzip", "bzip2", "gpg"):
        if not any((Path(p) / tool).exists() for p in os.environ["PATH"].split(os.pathsep)):
            pytest.skip(f"{tool} is not installed")
    r = run(bundle, "demo", "--no-gui", env=home, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"(\d+)/(\d+) versions behaved as the demo expects", r.stdout)
    assert m and m.group(1) == m.group(2), r.stdout


def test_keyring_custody_in_bundle(bundle: Path, keyring_session, rsa_key: RsaKey) -> None:
    """SecretService via jeepney/secretstorage, found by the frozen keyring."""
    env = {**os.environ, **keyring_session.env}
    r = run(bundle, "key", "import", str(rsa_key.private), "--name", "bundle-test", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        r = run(bundle, "key", "list", "--json", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "bundle-test" in r.stdout
    finally:
        run(bundle, "key", "remove", "bundle-test", "--yes", env=env)


def test_pkcs11_token_in_bundle(bundle: Path, softhsm, tmp_path: Path) -> None:
    """python-pkcs11 (a Cython extension, imported lazily) works frozen."""
    pin = softhsm.pin_file(tmp_path)
    r = run(
        bundle, "key", "list", "--pkcs11-module", softhsm.module, "--pin-file", str(pin),
        "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rsakey" in r.stdout

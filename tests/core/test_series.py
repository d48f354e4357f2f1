"""Local folders and nightly series (issue 12): a folder is listed as a prefix is, with
the same pairing; date-stamped names group into one series per backup, its nights as
versions, newest first. Real file names in tmp_path; real backups (gzip | openssl) where
a night is verified."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fixtures.common import run_cli
from fixtures.pipelines import RsaKey, openssl_variant, securecircle
from fixtures.s3scenarios import sealcheck
from sealcheck.core.storage.listing import NO_KEY_OBJECT, list_folder, probe_folder
from sealcheck.core.storage.naming import Rule, stamp_of

NIGHTS = [f"2025-01-0{d}" for d in range(1, 6)]


@pytest.mark.parametrize(
    ("name", "template", "night"),
    [
        (
            "clustercontrol/2025-01-01/backup-full.sql.gz.aes256",
            "clustercontrol/YYYY-MM-DD/backup-full.sql.gz.aes256",
            "2025-01-01",
        ),
        (
            "clustercontrol/20250101/backup-full.sql.gz.aes256",
            "clustercontrol/YYYYMMDD/backup-full.sql.gz.aes256",
            "20250101",
        ),
        (
            "backup-2025-01-01T0300.sql.gz.enc",
            "backup-YYYY-MM-DDThhmm.sql.gz.enc",
            "2025-01-01T0300",
        ),
        ("db/2025/01/02/dump.sql.gz.enc", "db/YYYY/MM/DD/dump.sql.gz.enc", "2025/01/02"),
        ("pg-20250102_031500.sql.bz.enc", "pg-YYYYMMDD_hhmmss.sql.bz.enc", "20250102_031500"),
    ],
)
def test_a_date_in_the_name_is_a_night(name: str, template: str, night: str) -> None:
    st = stamp_of(name)
    assert st is not None and (st.template, st.night) == (template, night)


@pytest.mark.parametrize(
    "name",
    ["1567744961188141183.sql.gz", "db/shop.sql.bz.enc", "x20251301.enc", "v120250101.enc"],
)
def test_ids_and_impossible_dates_are_no_nights(name: str) -> None:
    assert stamp_of(name) is None


@pytest.fixture
def nightly(tmp_path: Path, small_dump: Path) -> tuple[Path, Path]:
    """Five nights of a ClusterControl-style backup (gzip | openssl enc -pass file:), a
    folder per night, and a README beside them; returns (the folder, the passphrase)."""
    b = openssl_variant(small_dump, tmp_path / "made", name="backup-full.sql.gz.aes256")
    assert b.passphrase_file is not None
    root = tmp_path / "backups"
    for i, night in enumerate(NIGHTS):
        d = root / "clustercontrol" / night
        d.mkdir(parents=True)
        shutil.copy(b.data, d / b.data.name)
        os.utime(d / b.data.name, (1_735_700_000 + i * 86400,) * 2)
    (root / "README.txt").write_text("Nightly backups, one folder a night.\n")
    (root / "clustercontrol" / ".DS_Store").write_bytes(b"\0" * 16)
    return root, b.passphrase_file


def test_five_nights_are_one_backup_set_with_five_versions(nightly) -> None:
    root, _ = nightly
    sets = {s.name: s for s in list_folder(root)}
    name = f"{root}/clustercontrol/YYYY-MM-DD/backup-full.sql.gz.aes256"
    assert set(sets) == {name, f"{root}/README.txt"}  # hidden files are left out
    s = sets[name]
    assert s.is_series and s.recognised and s.key_name is None
    assert [p.night for p in s.pairs] == list(reversed(NIGHTS))  # newest first
    assert [p.data.key for p in s.pairs] == [
        f"{root}/clustercontrol/{n}/backup-full.sql.gz.aes256" for n in reversed(NIGHTS)
    ]
    assert s.newest is not None and s.newest.key.endswith("2025-01-05/backup-full.sql.gz.aes256")
    assert s.issues == ()
    assert not sets[f"{root}/README.txt"].recognised


def test_sealcheck_list_dir_lists_the_series_and_a_night_verifies(nightly) -> None:
    root, passphrase = nightly
    r = sealcheck("list", str(root))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert f"{root}/clustercontrol/YYYY-MM-DD/backup-full.sql.gz.aes256" in lines
    assert "  nightly series: 5 night(s), 2025-01-01 … 2025-01-05" in lines
    assert lines[-1] == f"1 backup set(s), 5 version(s) under {root}"
    assert f"{root}/README.txt  (not a recognised backup)" in lines
    assert "(unversioned)" not in r.stdout  # files have no versions to show
    doc = sealcheck("list", str(root), "--json").json()
    assert (doc["kind"], doc["versioning"]) == ("folder", None)
    (s,) = [x for x in doc["backup_sets"] if x["recognised"]]
    assert s["series"]["nights"] == 5
    assert [v["night"] for v in s["versions"]] == list(reversed(NIGHTS))
    newest = s["versions"][0]["data"]["key"]
    # The path the listing gives is what verify takes (as an s3:// key is).
    r = run_cli("verify", newest, "--passphrase-file", str(passphrase), "--no-history")
    assert r.returncode == 0, r.stdout + r.stderr


def test_other_date_layouts_in_one_folder(tmp_path: Path) -> None:
    for night in ("20250101", "20250102", "20250103"):
        (tmp_path / "cc" / night).mkdir(parents=True)
        (tmp_path / "cc" / night / "backup-full.sql.gz.aes256").write_bytes(b"Salted__" + bytes(40))
    for stamp in ("2025-01-01T0300", "2025-01-02T0300", "2025-01-02T1500"):
        (tmp_path / f"backup-{stamp}.sql.gz.enc").write_bytes(b"Salted__" + bytes(40))
    sets = {s.name: s for s in list_folder(tmp_path)}
    assert set(sets) == {
        f"{tmp_path}/backup-YYYY-MM-DDThhmm.sql.gz.enc",
        f"{tmp_path}/cc/YYYYMMDD/backup-full.sql.gz.aes256",
    }
    stamped = sets[f"{tmp_path}/backup-YYYY-MM-DDThhmm.sql.gz.enc"]
    assert [p.night for p in stamped.pairs] == [
        "2025-01-02T1500",
        "2025-01-02T0300",
        "2025-01-01T0300",
    ]
    compact = sets[f"{tmp_path}/cc/YYYYMMDD/backup-full.sql.gz.aes256"]
    assert [p.night for p in compact.pairs] == ["20250103", "20250102", "20250101"]


def test_a_folder_pairs_keys_as_s3_does(tmp_path: Path, small_dump: Path, rsa_key: RsaKey) -> None:
    """SecureCircle's X + X.key each night (one night lost its key), and a user's own
    naming rule: the same pairing as in a bucket."""
    made = securecircle(small_dump, tmp_path / "made", rsa_key, name="shop")
    assert made.wrapped_key is not None
    root = tmp_path / "backups"
    for night in ("2025-01-01", "2025-01-02", "2025-01-03"):
        (root / night).mkdir(parents=True)
        shutil.copy(made.data, root / night / "shop.sql.gz")
        if night != "2025-01-02":
            shutil.copy(made.wrapped_key, root / night / "shop.sql.gz.key")
    (root / "other").mkdir()
    shutil.copy(made.data, root / "other" / "orders.dump.enc")
    shutil.copy(made.wrapped_key, root / "other" / "orders.secret")
    sets = {s.name: s for s in list_folder(root, [Rule.parse(".dump.enc:.secret")])}
    series = sets[f"{root}/YYYY-MM-DD/shop.sql.gz"]
    assert series.key_name == f"{root}/YYYY-MM-DD/shop.sql.gz.key"
    got = [(p.night, p.key.key if p.key else None, p.issue) for p in series.pairs]
    assert got == [
        ("2025-01-03", f"{root}/2025-01-03/shop.sql.gz.key", None),
        ("2025-01-02", None, NO_KEY_OBJECT),
        ("2025-01-01", f"{root}/2025-01-01/shop.sql.gz.key", None),
    ]
    assert "1 night(s) without a wrapped-key object beside the backup" in series.issues
    ruled = sets[f"{root}/other/orders.dump.enc"]
    assert ruled.key_name == f"{root}/other/orders.secret"
    # A night verifies with its key found beside it, as `sealcheck verify` finds it.
    newest = series.pairs[0].data.key
    r = run_cli("verify", newest, "--key", str(rsa_key.private), "--no-history")
    assert r.returncode == 0, r.stdout + r.stderr


def test_an_opened_file_lists_itself_and_its_key(tmp_path: Path) -> None:
    (tmp_path / "x.sql.gz").write_bytes(b"Salted__" + bytes(40))
    (tmp_path / "x.sql.gz.key").write_bytes(bytes(256))
    (tmp_path / "unrelated.sql.gz.enc").write_bytes(b"Salted__" + bytes(40))
    (s,) = list_folder(tmp_path / "x.sql.gz")
    assert (s.name, s.key_name) == (f"{tmp_path}/x.sql.gz", f"{tmp_path}/x.sql.gz.key")


def test_an_empty_folder_says_so_and_what_is_one_level_up(tmp_path: Path) -> None:
    (tmp_path / "mysql").mkdir()
    (tmp_path / "postgres").mkdir()
    (tmp_path / "notes.md").write_text("x")
    r = sealcheck("list", str(tmp_path / "mysql"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"The folder {tmp_path}/mysql is empty.")
    assert f"One level up, {tmp_path} holds: notes.md, postgres/." in r.stdout
    assert "naming rule DATA_SUFFIX:KEY_SUFFIX" in r.stdout
    p = probe_folder(tmp_path / "mysql")
    assert p.count == 0 and p.text().startswith(f"The folder {tmp_path}/mysql is empty.")


def test_a_missing_folder_is_a_clean_error(tmp_path: Path) -> None:
    r = sealcheck("list", str(tmp_path / "nope"))
    assert r.returncode == 2
    assert f"{tmp_path}/nope: No such file or folder: check the path." in r.stderr
    assert r.stdout == ""

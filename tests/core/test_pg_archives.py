"""pg_dump archives (custom -Fc, tar -Ft, directory -Fd tarred) read to their last block.

Issue 18: a ``pg_dump -Fc`` backup in ``openssl enc`` (CBC, no MAC) with one byte
flipped verified. Every archive here is made by the real pg_dump from the test
PostgreSQL (compression none and gzip; lz4 and zstd where the installed pg_dump
offers them), encrypted by the real ``openssl enc`` and run through the real
pipeline. Damaged variants: a flipped ciphertext byte in every region the parser
maps (header, TOC, each data block; each tar member's header and data; the tar's
end), the archive cut short at every block boundary, a directory member missing.
None may verify: each fails at the payload or at an earlier layer.
"""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.adversarial import assert_failed, assert_nothing_written, cli_json, run_job
from fixtures.common import run_cli
from fixtures.databases import LoadedDatabase, PostgresServer
from fixtures.pipelines import q, sh
from fixtures.pipelines import seal as seal_object
from sealcheck.core.payload.pgdump.custom import CustomArchiveCheck

ENC = "-aes-256-cbc -pbkdf2"
SALTED = 16  # "Salted__" and the salt come before the ciphertext


@dataclass
class Archive:
    name: str
    plain: Path  # what openssl enc encrypts (the tar for a directory archive)
    kind: str  # payload kind the report must name
    compression: str


class Dumper:
    """Runs the real pg_dump of the test server on one database."""

    def __init__(self, srv: PostgresServer, db: str, out: Path) -> None:
        self.srv, self.db, self.out = srv, db, out
        self.help = self._run("--help").stdout
        self._made: dict[str, Archive] = {}

    def _run(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.srv.bindir / "pg_dump"), *args], capture_output=True, text=True, **kw
        )

    def conn(self) -> str:
        s = self.srv
        return f"-h {q(s.socket_dir)} -p {s.port} -U {s.superuser} -d {shlex.quote(self.db)}"

    def pg_dump(self) -> str:
        return q(self.srv.bindir / "pg_dump")

    def offers(self, method: str) -> bool:
        # pg_dump 16+ documents -Z METHOD[:DETAIL]; older ones take a level only.
        return "METHOD" in self.help and self._probe(method)

    def _probe(self, method: str) -> bool:
        r = subprocess.run(
            f"{self.pg_dump()} -Fc -Z {method} --schema-only {self.conn()} > /dev/null",
            shell=True,
            capture_output=True,
            check=False,
        )
        return r.returncode == 0

    def make(self, name: str) -> Archive:
        """The archive ``name`` ("custom-gzip", "dir-none", ...), made once per module."""
        if name not in self._made:
            self._made[name] = self._make(name)
        return self._made[name]

    def _make(self, name: str) -> Archive:
        out, pgd, conn = self.out, self.pg_dump(), self.conn()
        fmt, _, comp = name.partition("-")
        z = {"none": "-Z0", "gzip": "", "lz4": "-Z lz4", "zstd": "-Z zstd"}[comp]
        if comp in ("lz4", "zstd") and not self.offers(comp):
            pytest.skip(f"the installed pg_dump ({self.srv.version}) has no {comp} compression")
        if fmt == "custom":
            path = out / f"{name}.dump"
            sh(f"{pgd} -Fc {z} -f {q(path)} {conn}", out)
            return Archive(name, path, "pg_dump-custom", comp)
        if fmt == "pipe":  # to a pipe: no data offsets in the TOC
            path = out / f"{name}.dump"
            sh(f"{pgd} -Fc {z} {conn} | cat > {q(path)}", out)
            return Archive(name, path, "pg_dump-custom", comp)
        if fmt == "tar":
            path = out / f"{name}.tar"
            sh(f"{pgd} -Ft {conn} > {q(path)}", out)
            return Archive(name, path, "pg_dump-tar", "none")
        folder = out / name
        sh(f"rm -rf {q(folder)}; {pgd} -Fd {z} -f {q(folder)} {conn}", out)
        path = out / f"{name}.tar"
        sh(f"tar -C {q(out)} -cf {q(path)} {shlex.quote(name)}", out)
        return Archive(name, path, "pg_dump-directory", comp)


NAMES = ["custom-gzip", "custom-none", "pipe-gzip", "tar-none", "dir-gzip", "dir-none"]
NEWER = ["custom-lz4", "custom-zstd", "dir-lz4", "dir-zstd"]

# A second schema with names that need quoting, and large objects.
EXTRA_SQL = """
CREATE SCHEMA "Odd, Schema";
CREATE TABLE "Odd, Schema"."Order Lines, 2024" ("a,b" int, "x ""y"" z" text, z bytea);
INSERT INTO "Odd, Schema"."Order Lines, 2024"
  SELECT i, 'row ' || i || E'\\ttab', decode(md5(i::text), 'hex') FROM generate_series(1, 300) i;
CREATE TABLE empty_table (id int);
SELECT lo_from_bytea(0, 'a large object'::bytea);
SELECT lo_from_bytea(0, decode(repeat('00ff', 50000), 'hex'));
"""


@pytest.fixture(scope="module")
def pg_db(pg_server: PostgresServer) -> Iterator[LoadedDatabase]:
    db = pg_server.load_rich("pgarchives")
    pg_server.psql(EXTRA_SQL, db.name)
    yield db


@pytest.fixture(scope="module")
def dumper(pg_server: PostgresServer, pg_db: LoadedDatabase, tmp_path_factory) -> Dumper:
    return Dumper(pg_server, pg_db.name, tmp_path_factory.mktemp("pgarchives"))


@pytest.fixture
def archive(request: pytest.FixtureRequest, dumper: Dumper) -> Archive:
    return dumper.make(request.param)


def seal(plain: Path, folder: Path, enc: str = ENC) -> tuple[Path, Path]:
    """``openssl enc ENC -pass file:PF`` of ``plain`` (``plain.enc``), as a backup script does."""
    return seal_object(folder, plain.name + ".enc", f"cat {q(plain)}", enc=enc)


def expected_rows(db: LoadedDatabase) -> dict[str, int]:
    rows = {f"public.{t}": n for t, n in db.row_counts.items()}
    rows["Odd, Schema.Order Lines, 2024"] = 300
    rows["public.empty_table"] = 0
    return rows


def regions(plain: bytes) -> list[tuple[str, int, int]]:
    """The parser's map of an archive: (what, start, end) for each part."""
    if plain.startswith(b"PGDMP"):
        check = CustomArchiveCheck()
        check.feed(plain)
        return check.finish().spans
    out = []
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as tf:
        for m in tf.getmembers():
            out.append((f"header of {m.name}", m.offset, m.offset_data))
            if m.size:
                out.append((f"data of {m.name}", m.offset_data, m.offset_data + m.size))
        end = tf.offset
    out.append(("end blocks", end, end + 1024))
    return out


def offsets_in(start: int, end: int) -> list[int]:
    """First, middle and last byte of a region (distinct ones)."""
    return sorted({start, (start + end) // 2, end - 1})


def damage_offsets(archive: Archive, what: str, start: int, end: int) -> list[int]:
    """Where to flip a byte in one region of the map."""
    if archive.compression == "none" and "BLOBS" in what:
        # Known limit: an uncompressed large object is bytes with no check of its own
        # (the report says so): only its block's framing can be damaged detectably.
        return [start]
    if archive.compression == "none" and what.startswith("data of") and "blob_" in what:
        return []
    return offsets_in(start, end)


# --- intact archives --------------------------------------------------------------


@pytest.mark.parametrize("archive", NAMES + NEWER, indirect=True)
def test_intact_archive_is_read_to_its_last_block(archive: Archive, pg_db, tmp_path: Path):
    data, pf = seal(archive.plain, tmp_path)
    rep = run_job(data, passphrase=pf.read_bytes(), dest=tmp_path / "restored").to_dict()
    assert rep["ok"], rep["error"]
    assert (tmp_path / "restored").read_bytes() == archive.plain.read_bytes()
    payload = next(x for x in rep["layers"] if x["layer"] == "payload")
    d = payload["details"]
    assert payload["status"] == "ok" and d["checked"] is True, payload
    assert d["kind"] == archive.kind and d["database"] == pg_db.name
    assert d["producer_version"] and d["server_version"]
    (facts,) = d["archives"]
    assert facts["compression"] == archive.compression
    assert facts["table_rows"] == expected_rows(pg_db)
    assert facts["large_objects"] == 2
    assert facts["data_checked"] == facts["data_entries"] == len(expected_rows(pg_db)) + 1
    # The TOC holds what pg_restore lists, and the entries it applies itself.
    special = sum(facts["entries_by_kind"].get(k, 0) for k in SPECIAL_ENTRIES)
    assert facts["toc_entries"] == _pg_restore_count(archive) + special
    assert rep["warnings"] == []


# Entries pg_restore applies itself and does not list (pg_restore -l).
SPECIAL_ENTRIES = ("ENCODING", "STDSTRINGS", "SEARCHPATH", "DATABASE")


def _pg_restore_count(archive: Archive) -> int:
    from fixtures.databases import _pg_bindir

    bindir = _pg_bindir()
    assert bindir is not None
    target = archive.plain
    if archive.kind == "pg_dump-directory":
        target = archive.plain.with_suffix("")  # the folder pg_dump wrote
    r = subprocess.run(
        [str(bindir / "pg_restore"), "-l", str(target)], capture_output=True, text=True, check=True
    )
    return sum(1 for line in r.stdout.splitlines() if line and not line.startswith(";"))


# --- damage: a flipped ciphertext byte in every region ----------------------------


@pytest.mark.parametrize("archive", NAMES, indirect=True)
def test_flipped_byte_in_every_region_never_verifies(archive: Archive, tmp_path: Path):
    data, pf = seal(archive.plain, tmp_path)
    cipher = data.read_bytes()
    plain = archive.plain.read_bytes()
    accepted, tried = [], 0
    for what, start, end in regions(plain):
        for off in damage_offsets(archive, what, start, min(end, len(plain))):
            bad = bytearray(cipher)
            bad[SALTED + off] ^= 0x01  # CBC: that plaintext block garbled, one byte after
            victim = tmp_path / f"flip-{off}.enc"
            victim.write_bytes(bad)
            rep = run_job(victim, passphrase=pf.read_bytes()).to_dict()
            tried += 1
            if rep["ok"]:
                accepted.append((what, off))
                continue
            err = assert_failed(rep, obj=victim)
            # The first block is what confirms the key (openssl enc has no MAC): damaged,
            # it fails the key step; anything else fails decryption or the payload.
            assert err["layer"] in ("key", "cipher", "payload"), (what, off, err)
            # A tar's first header (magic at byte 257) is what confirms the key there.
            confirm = 512 if archive.kind != "pg_dump-custom" else 16
            assert err["layer"] != "key" or off < confirm, (what, off, err)
    assert tried >= 15
    assert accepted == []


def test_the_issue_case_fails_through_the_cli(dumper: Dumper, tmp_path: Path):
    """The report of issue 18: -Fc, openssl enc, one byte flipped in the middle."""
    archive = dumper.make("custom-gzip")
    data, pf = seal(archive.plain, tmp_path)
    bad = bytearray(data.read_bytes())
    bad[len(bad) // 2] ^= 0x01
    data.write_bytes(bad)
    rc, rep, _ = cli_json("verify", str(data), "--passphrase-file", str(pf))
    assert rc == 1
    err = assert_failed(rep, obj=data, layer="payload", kind="IntegrityError")
    assert "TABLE DATA" in err["message"]
    dest = tmp_path / "out.dump"
    r = run_cli(
        "restore", str(data), "-o", str(dest), "--passphrase-file", str(pf), "--no-progress"
    )
    assert r.returncode == 1 and r.stdout.startswith("FAILED"), r.stdout
    assert_nothing_written(dest)


# --- damage: cut short at every block boundary -------------------------------------


@pytest.mark.parametrize("archive", ["custom-gzip", "pipe-gzip", "tar-none", "dir-gzip"],
                         indirect=True)  # fmt: skip
def test_cut_at_every_block_boundary_is_incomplete(archive: Archive, tmp_path: Path):
    plain = archive.plain.read_bytes()
    spans = regions(plain)
    # Everything before the end of the last part is a cut archive (a tar's record
    # padding after its end blocks is not part of the archive).
    cuts = sorted({b for _, s, e in spans for b in (s, e)} - {0, spans[-1][2]})
    cuts = [c for c in cuts if c < min(len(plain), spans[-1][2])]
    assert len(cuts) >= 6
    for cut in cuts:
        short = tmp_path / f"cut-{cut}"
        short.write_bytes(plain[:cut])  # pg_dump stopped here; the script encrypted the rest
        data, pf = seal(short, tmp_path / f"enc-{cut}")
        rep = run_job(data, passphrase=pf.read_bytes()).to_dict()
        err = assert_failed(rep, obj=data, layer="payload", kind="IncompleteDump")
        assert (
            "cut short" in err["message"]
            or "missing" in err["message"]
            or ("not in the tar" in err["message"])
        ), err


# --- damage: a directory archive without one of its files ---------------------------


@pytest.mark.parametrize("drop", ["a table's data", "toc.dat", "a large object"])
def test_directory_member_missing_is_incomplete(dumper: Dumper, drop: str, tmp_path: Path):
    archive = dumper.make("dir-gzip")
    folder = tmp_path / "dir-gzip"
    sh(f"cp -r {q(archive.plain.with_suffix(''))} {q(folder)}", tmp_path)
    files = sorted(p.name for p in folder.iterdir())
    victim = {
        "a table's data": next(f for f in files if f[0].isdigit()),
        "toc.dat": "toc.dat",
        "a large object": next(f for f in files if f.startswith("blob_")),
    }[drop]
    (folder / victim).unlink()
    tgz = tmp_path / "backup.tar.gz"
    sh(f"tar -C {q(tmp_path)} -czf {q(tgz)} dir-gzip", tmp_path)
    data, pf = seal(tgz, tmp_path / "enc")
    rep = run_job(data, passphrase=pf.read_bytes()).to_dict()
    err = assert_failed(rep, obj=data, layer="payload", kind="IncompleteDump")
    assert victim.split(".")[0] in err["message"] or "toc.dat" in err["message"], err


def test_tarred_directory_in_gzip_verifies(dumper: Dumper, tmp_path: Path):
    """``tar czf`` of a -Fd folder: gzip proves the bytes, the payload the archive."""
    archive = dumper.make("dir-gzip")
    tgz = tmp_path / "db.tar.gz"
    sh(f"gzip -c {q(archive.plain)} > {q(tgz)}", tmp_path)
    data, pf = seal(tgz, tmp_path / "enc", enc="-aes-256-ctr -pbkdf2")
    rc, rep, _ = cli_json("verify", str(data), "--passphrase-file", str(pf))
    assert rc == 0, rep
    layers = {x["layer"]: x for x in rep["layers"]}
    assert layers["decompress"]["status"] == "ok"
    assert layers["payload"]["details"]["kind"] == "pg_dump-directory"


# --- a payload nobody can judge ---------------------------------------------------


def test_unjudged_payload_is_never_a_plain_verified(tmp_path: Path):
    other = tmp_path / "photos.tar"
    (tmp_path / "a.txt").write_text("not a database\n")
    sh(f"tar -C {q(tmp_path)} -cf {q(other)} a.txt", tmp_path)
    data, pf = seal(other, tmp_path / "enc")
    r = run_cli("verify", str(data), "--passphrase-file", str(pf), "--no-progress")
    assert r.returncode == 0
    head = r.stdout.splitlines()
    assert head[0].startswith("VERIFIED (payload not checked)"), r.stdout
    assert "NOT proved: the payload" in head[1]
    assert "warning: payload not checked" in r.stdout
    rc, rep, _ = cli_json("verify", str(data), "--passphrase-file", str(pf), "--strict")
    assert rc == 1 and rep["error"]["kind"] == "PayloadNotChecked", rep
    assert rep["error"]["layer"] == "payload"
    dest = tmp_path / "out.tar"
    r = run_cli(
        "restore", str(data), "-o", str(dest), "--passphrase-file", str(pf), "--strict",
        "--no-progress",
    )  # fmt: skip
    assert r.returncode == 1 and "payload not checked" in r.stdout.lower(), r.stdout
    assert_nothing_written(dest)


def test_checked_archive_passes_strict(dumper: Dumper, tmp_path: Path):
    archive = dumper.make("tar-none")
    data, pf = seal(archive.plain, tmp_path)
    r = run_cli("verify", str(data), "--passphrase-file", str(pf), "--strict", "--no-progress")
    assert r.returncode == 0, r.stdout
    assert r.stdout.startswith("VERIFIED  "), r.stdout
    assert "pg_dump (tar format)" in r.stdout


@pytest.mark.parametrize("size", [1, 7, 511, 4096, 65537, 1 << 22])
def test_any_chunk_size_gives_the_same_facts(dumper: Dumper, size: int):
    """The plaintext reaches the inspector in chunks of any size, down to single bytes."""
    archive = dumper.make("custom-none" if size > 511 else "custom-gzip")
    plain = archive.plain.read_bytes()
    check = CustomArchiveCheck()
    for i in range(0, len(plain), size):
        check.feed(plain[i : i + size])
    facts = check.finish()
    assert facts.toc is not None and facts.blocks == len(facts.toc.data)
    assert facts.spans[-1][2] == len(plain)

"""The evidence report's seal: ``sealcheck report check`` and the documented shell check
on reports exported by the real CLI from real verifications, then forged the ways a
forger would (content after ``</html>``, bytes before ``<html>``, an edited value)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from html import escape
from pathlib import Path

import pytest
from test_cli_history import cli, cut_copy, verify

from fixtures.common import REPO
from fixtures.dumps import mysql_like
from fixtures.pipelines import RsaKey, securecircle
from sealcheck.core.records import evidence
from sealcheck.core.records.evidence_check import Problem, check

FORGED_STYLE = (
    b"</html><style>.failed,table,details{display:none}"
    b"h1::after{content:' VERIFIED';color:green}</style>"
)


@dataclass(frozen=True)
class Exported:
    html: bytes
    json: bytes


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, rsa_key: RsaKey) -> Exported:
    """One OK and one FAILED verification, exported once as HTML and as JSON."""
    root = tmp_path_factory.mktemp("evidence")
    env = {**os.environ, "SEALCHECK_DATA_DIR": str(root / "data")}
    good = securecircle(mysql_like(root / "dump.sql"), root / "s3", rsa_key)
    assert verify(env, good, rsa_key).returncode == 0
    assert verify(env, cut_copy(good, root / "s3" / "cut.sql.gz"), rsa_key).returncode == 1
    out = {}
    for fmt in ("html", "json"):
        path = root / f"report.{fmt}"
        r = cli(env, "report", "export", "1", "2", "--format", fmt, "-o", str(path))
        assert r.returncode == 0, r.stderr
        out[fmt] = path.read_bytes()
    return Exported(out["html"], out["json"])


def report_check(path: Path) -> subprocess.CompletedProcess[str]:
    return cli(dict(os.environ), "report", "check", str(path))


def shell_check(path: Path) -> str:
    """The README's one-liner, run by bash on ``path`` (named report.html)."""
    assert path.name == "report.html"
    r = subprocess.run(
        ["bash", "-c", evidence.SHELL_CHECK],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0 and not r.stderr, r.stderr
    return r.stdout.strip()


def put(tmp_path: Path, data: bytes, name: str = "report.html") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_broken(path: Path, problem: Problem) -> None:
    r = report_check(path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout.startswith("SEAL BROKEN") and f"  {problem.value}: " in r.stdout, r.stdout


def test_the_documented_check_is_the_one_in_the_readme_and_the_report(
    exported: Exported,
) -> None:
    readme = (REPO / "README.md").read_text()
    assert f"`{evidence.SHELL_CHECK}`" in readme
    assert escape(evidence.SHELL_CHECK) in exported.html.decode()


def test_an_untouched_html_report_passes_both_checks(exported: Exported, tmp_path: Path) -> None:
    path = put(tmp_path, exported.html)
    assert shell_check(path) == "seal intact"
    r = report_check(path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    digest = exported.html[-65:-1].decode()
    assert r.stdout.startswith("seal intact") and digest in r.stdout
    assert hashlib.sha256(exported.html[:-65]).hexdigest() == digest
    text = exported.html.decode()
    sealed = len(exported.html) - 65
    assert f"the first {sealed} bytes" in text and f"exactly {sealed + 65} bytes" in text
    assert f"<!-- sealcheck-evidence-seal bytes={sealed} -->" in text
    assert "FAILED" in text and "OK" in text  # both verdicts are in the sealed part


def test_a_style_appended_after_html_breaks_the_seal(exported: Exported, tmp_path: Path) -> None:
    path = put(tmp_path, exported.html + FORGED_STYLE + b"\n")
    assert shell_check(path) == "SEAL BROKEN"
    assert_broken(path, Problem.CONTENT_AFTER_SEAL)
    assert f"goes on for {len(FORGED_STYLE) + 1} bytes after" in report_check(path).stdout
    # The style moved before the seal line (and the stated sizes made to match): the
    # line is last again, but it no longer hashes what precedes it.
    n, style = len(exported.html) - 65, FORGED_STYLE[len(b"</html>") :]
    body = exported.html[:n].replace(f"bytes={n}".encode(), f"bytes={n + len(style)}".encode())
    opener = b"<p class='seal'>"
    forged = body[: -len(opener)] + style + opener + exported.html[n:]
    path = put(tmp_path, forged)
    assert shell_check(path) == "SEAL BROKEN"
    assert_broken(path, Problem.DIGEST_MISMATCH)


def test_a_style_put_in_place_of_the_last_newline_breaks_the_seal(
    exported: Exported, tmp_path: Path
) -> None:
    path = put(tmp_path, exported.html[:-1] + FORGED_STYLE)
    assert shell_check(path) == "SEAL BROKEN"
    assert report_check(path).returncode == 1


def test_bytes_before_html_break_the_seal(exported: Exported, tmp_path: Path) -> None:
    start = exported.html.index(b"<html")
    forged = exported.html[:start] + FORGED_STYLE[len(b"</html>") :] + exported.html[start:]
    path = put(tmp_path, forged)
    assert shell_check(path) == "SEAL BROKEN"
    assert_broken(path, Problem.DIGEST_MISMATCH)
    assert "changed after the export" in report_check(path).stdout


def test_an_edited_verdict_breaks_the_seal(exported: Exported, tmp_path: Path) -> None:
    forged = exported.html.replace(b"FAILED", b"OK", 1)
    path = put(tmp_path, forged)
    assert shell_check(path) == "SEAL BROKEN"
    assert_broken(path, Problem.DIGEST_MISMATCH)


@pytest.mark.parametrize("cut", [1, 30, 65, 66, 500])
def test_a_truncated_html_report_breaks_the_seal(
    exported: Exported, tmp_path: Path, cut: int
) -> None:
    path = put(tmp_path, exported.html[:-cut])
    assert shell_check(path) == "SEAL BROKEN"
    assert check(path.read_bytes()).problem is Problem.TRUNCATED
    if cut in (1, 500):
        assert_broken(path, Problem.TRUNCATED)


def test_files_without_a_seal(exported: Exported, tmp_path: Path) -> None:
    no_mark = exported.html.replace(b"sealcheck-evidence-seal", b"sealcheck-evidence-xxxx")
    assert check(no_mark).problem is Problem.DIGEST_MISMATCH
    resealed = no_mark[:-65] + hashlib.sha256(no_mark[:-65]).hexdigest().encode() + b"\n"
    assert check(resealed).problem is Problem.NO_SEAL  # a hash line, but not our seal
    assert_broken(put(tmp_path, b""), Problem.NO_SEAL)
    assert_broken(put(tmp_path, b"<!DOCTYPE html><p>VERIFIED</p>\n"), Problem.NO_SEAL)
    assert_broken(put(tmp_path, exported.html[:2000]), Problem.TRUNCATED)
    # As Sealcheck 0.1.0 sealed it: the first N bytes only, so refused by name.
    mark = exported.html.index(b"<!-- sealcheck-evidence-seal")
    early = exported.html[:mark] + b"<!-- sealcheck-evidence-seal -->\n</body></html>\n"
    assert check(early).problem is Problem.NO_SEAL and "earlier way" in check(early).detail


def test_an_untouched_json_report_passes(exported: Exported, tmp_path: Path) -> None:
    r = report_check(put(tmp_path, exported.json, "report.json"))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert json.loads(exported.json)["sha256"] in r.stdout and "JSON" in r.stdout


def test_json_with_content_appended_breaks_the_seal(exported: Exported, tmp_path: Path) -> None:
    for extra in (b'{"verdict": "VERIFIED"}\n', b"// all OK\n", b"\n"):
        path = put(tmp_path, exported.json + extra, "report.json")
        assert_broken(path, Problem.CONTENT_AFTER_SEAL)
    doc = json.loads(exported.json)
    doc["verdict"] = "VERIFIED"  # a member after the seal
    path = put(tmp_path, (json.dumps(doc, indent=2) + "\n").encode(), "report.json")
    assert_broken(path, Problem.CONTENT_AFTER_SEAL)


def test_json_with_an_edited_value_breaks_the_seal(exported: Exported, tmp_path: Path) -> None:
    text = exported.json.decode()
    assert '"verdict": "FAILED"' in text
    path = put(tmp_path, text.replace('"verdict": "FAILED"', '"verdict": "OK"').encode())
    assert_broken(path, Problem.DIGEST_MISMATCH)
    # A second copy of a member: some parsers show the first, Python keeps the last.
    dup = text.replace('"verdict": "FAILED"', '"verdict": "OK", "verdict": "FAILED"', 1)
    assert check(dup.encode()).problem is Problem.EDITED_OUTSIDE
    assert check(exported.json[:-1]).problem is Problem.TRUNCATED
    assert check(exported.json[: len(exported.json) // 2]).problem is Problem.TRUNCATED
    assert check(exported.json.replace(b'"format_version": 1', b'"format_version": 2')).problem is (
        Problem.EDITED_OUTSIDE
    )


def test_an_unreadable_report_exits_2(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.html", tmp_path):
        r = report_check(path)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert str(path) in r.stderr and "could not be read" in r.stderr

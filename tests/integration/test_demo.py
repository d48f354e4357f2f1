"""The README's main job: ``sealcheck demo --no-gui`` exits 0 and says why."""

from __future__ import annotations

from fixtures.common import run_cli


def test_demo_no_gui_runs_and_meets_expectations() -> None:
    r = run_cli("demo", "--no-gui", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "9/9 versions behaved as the demo expects" in r.stdout
    # The damaged versions fail, naming the layer that caught them.
    assert "dump is incomplete" in r.stdout
    assert "gzip data is corrupt" in r.stdout
    # And one good version comes back in a throwaway MariaDB with every row.
    assert "PASSED: 1 table(s), 4,000 rows back in MariaDB" in r.stdout

"""The core's front door (issue 11): ``sealcheck.core`` exports the few names the CLI
and the GUI need, each the very object of its home module, and loads them only when
used (importing one core module stays cheap)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import sealcheck.core as core


@pytest.mark.parametrize("name", [n for n in core.__all__ if n != "__version__"])
def test_each_name_is_its_home_modules_object(name: str) -> None:
    home = importlib.import_module(f"sealcheck.core.{core._EXPORTS[name]}")
    assert getattr(core, name) is getattr(home, name)


def test_all_lists_the_version_and_every_export() -> None:
    assert isinstance(core.__version__, str)
    assert set(core.__all__) == {"__version__", *core._EXPORTS}
    assert set(core.__all__) <= set(dir(core))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = core.nothing_here  # type: ignore[attr-defined]


def test_importing_a_core_module_does_not_load_the_front_door() -> None:
    """A fresh interpreter: ``sealcheck.core.errors`` alone brings neither the pipeline,
    the restore test nor boto3; asking the front door for ``run`` does."""
    code = (
        "import sys\n"
        "import sealcheck.core.errors\n"
        "heavy = ('sealcheck.core.pipeline', 'sealcheck.core.restoretest', 'boto3')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "from sealcheck.core import run, Job\n"
        "print(run.__module__, Job.__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    assert out == ["[]", "sealcheck.core.pipeline.run sealcheck.core.pipeline.job"]


# What the front door must not open wider than import-linter's protected contract: only
# gui.jobs, the demo and the CLI run the pipeline or a restore test.
RUNNERS = {"run", "restore_test", "Job", "RestoreTestOptions"}
MAY_RUN = ("gui/jobs/", "gui/demo/", "core/cli/")


def test_only_the_job_runners_take_the_runners_from_the_front_door() -> None:
    root = Path(__file__).resolve().parents[2]
    wrong = []
    for path in [*root.glob("gui/**/*.py"), *root.glob("core/**/*.py")]:
        rel = path.relative_to(root).as_posix()
        if rel.startswith(MAY_RUN):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "sealcheck.core":
                wrong += [f"{rel}: {a.name}" for a in node.names if a.name in RUNNERS]
    assert wrong == []

"""Write python3-deps.json: the Flatpak module with Sealcheck's runtime dependencies as
pinned PyPI wheels (URL + sha256) for x86_64 and aarch64, like flatpak-pip-generator but
from pip's own resolver (``pip install --dry-run --report``), so nothing is installed.

    .venv/bin/python packaging/flatpak/gen_python_deps.py

The Python version must match the runtime's (org.kde.Platform 6.8: Python 3.12). PySide6
comes from the io.qt.PySide.BaseApp base app, so it is not listed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PYTHON = "3.12"
ARCHES = ("x86_64", "aarch64")


def public_url(info: dict) -> str:
    url = info["download_info"]["url"]
    if url.startswith("https://"):
        return url
    # A local mirror's copy: PyPI serves every wheel under this stable path too.
    name = Path(url).name
    tag = name.split("-")[-3]
    proj = info["metadata"]["name"]
    return f"https://files.pythonhosted.org/packages/{tag}/{proj[0]}/{proj}/{name}"


def resolve(arch: str, reqs: list[str]) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        plats = [f"manylinux_2_28_{arch}", f"manylinux_2_17_{arch}", f"manylinux2014_{arch}"]
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
             "--target", str(Path(tmp) / "t"), "--report", str(report),
             "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
             *[a for p in plats for a in ("--platform", p)], *reqs],
            check=True,
            env={**os.environ, "PIP_CONSTRAINT": ""},
        )  # fmt: skip
        return json.loads(report.read_text())["install"]


def main() -> None:
    reqs = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = [r.split("#")[0].strip() for r in reqs]
    wheels: dict[str, dict] = {}  # url -> source
    names: set[str] = set()
    for arch in ARCHES:
        for info in resolve(arch, reqs):
            url = public_url(info)
            names.add(info["metadata"]["name"])
            src = wheels.setdefault(
                url,
                {
                    "type": "file",
                    "url": url,
                    "sha256": info["download_info"]["archive_info"]["hashes"]["sha256"],
                    "arches": set(),
                },
            )
            src["arches"].add(arch)
    sources = []
    for src in sorted(wheels.values(), key=lambda s: s["url"].rsplit("/", 1)[1]):
        arches = src.pop("arches")
        if arches != set(ARCHES):
            src["only-arches"] = sorted(arches)
        sources.append(src)
    module = {
        "name": "python3-deps",
        "buildsystem": "simple",
        "build-commands": [
            "pip3 install --verbose --exists-action=i --no-index --find-links=file://${PWD}"
            " --prefix=${FLATPAK_DEST} --no-build-isolation " + " ".join(sorted(names))
        ],
        "sources": sources,
    }
    (HERE / "python3-deps.json").write_text(json.dumps(module, indent=2) + "\n")
    print(f"{len(sources)} wheels for {len(names)} packages")


if __name__ == "__main__":
    main()

"""Desktop integration under resources/ and the Flatpak manifest: validated with the
freedesktop tools, and named after one application id everywhere."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RES = REPO / "resources"
APP_ID = "io.github.sealcheck.Sealcheck"
DESKTOP = RES / f"{APP_ID}.desktop"
METAINFO = RES / f"{APP_ID}.metainfo.xml"
MANIFEST = REPO / "packaging" / "flatpak" / f"{APP_ID}.yml"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (./dev installs it)")
    return path


def test_desktop_file_validates_clean() -> None:
    r = subprocess.run(
        [_tool("desktop-file-validate"), str(DESKTOP)], capture_output=True, text=True
    )
    # Not even hints: the file is small enough to keep spotless.
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_metainfo_validates() -> None:
    r = subprocess.run(
        [_tool("appstreamcli"), "validate", "--no-net", str(METAINFO)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    # Errors (E:) and warnings (W:) fail; infos (I:) such as a tag newer than this
    # appstream version knows (<developer>) are accepted.
    assert not re.search(r"^[EW]:", r.stdout, re.M), r.stdout


def test_one_application_id_everywhere() -> None:
    desktop = DESKTOP.read_text()
    assert f"Icon={APP_ID}\n" in desktop
    assert re.search(r"^Exec=sealcheck gui$", desktop, re.M)
    root = ET.parse(METAINFO).getroot()
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable") == DESKTOP.name
    assert root.findtext("project_license") == "Apache-2.0"
    assert f'APP_ID = "{APP_ID}"' in (REPO / "gui" / "views" / "about.py").read_text()
    assert re.search(rf"^id: {re.escape(APP_ID)}$", MANIFEST.read_text(), re.M)
    for icon in (RES / f"{APP_ID}.svg", RES / f"{APP_ID}-symbolic.svg"):
        svg = ET.parse(icon).getroot()
        assert svg.tag.endswith("svg") and svg.get("viewBox"), icon


def test_metainfo_screenshots_are_the_ones_in_docs() -> None:
    root = ET.parse(METAINFO).getroot()
    images = [i.text or "" for i in root.iter("image")]
    assert images
    for url in images:
        assert url.startswith("https://")
        assert (REPO / "docs" / "screenshots" / url.rsplit("/", 1)[1]).is_file(), url


def test_resources_ship_in_the_wheel() -> None:
    import tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["sealcheck.resources"]
    for f in (DESKTOP, METAINFO, RES / f"{APP_ID}.svg", RES / f"{APP_ID}-symbolic.svg"):
        assert any(f.match(g) for g in globs), f


def test_flatpak_manifest_permissions() -> None:
    yaml = pytest.importorskip("yaml")
    m = yaml.safe_load(MANIFEST.read_text())
    assert m["base"] == "io.qt.PySide.BaseApp"
    assert m["command"] == "sealcheck"
    # Exactly what the app needs, nothing more (no --filesystem: the file portal).
    assert set(m["finish-args"]) == {
        "--socket=wayland",
        "--socket=fallback-x11",
        "--share=ipc",
        "--share=network",
        "--talk-name=org.freedesktop.secrets",
        "--socket=pcsc",
    }
    deps = m["modules"][0]
    assert deps == "python3-deps.json"
    assert (MANIFEST.parent / deps).is_file()


def test_flatpak_manifest_parses() -> None:
    """flatpak-builder's own parser (flatpak-builder-lint is not packaged for Debian)."""
    r = subprocess.run(
        [_tool("flatpak-builder"), "--show-manifest", str(MANIFEST)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


def test_flatpak_module_installs_every_runtime_dependency() -> None:
    """python3-deps.json is generated (gen_python_deps.py) and checked in: a dependency
    added to pyproject.toml without regenerating it breaks the Flatpak build (pip
    --no-index finds no wheel), as reportlab once did."""
    import json
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    module = json.loads((MANIFEST.parent / "python3-deps.json").read_text())
    (install,) = [c for c in module["build-commands"] if c.startswith("pip3 install")]

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    listed = {norm(w) for w in install.split() if not w.startswith("-")}
    env = {"python_version": "3.12", "platform_machine": "x86_64", "sys_platform": "linux"}
    needed = set()
    for spec in project["dependencies"]:
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate(env):
            needed.add(norm(req.name))
    assert needed <= listed, f"regenerate it: {sorted(needed - listed)}"

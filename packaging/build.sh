#!/usr/bin/env bash
# Build the one-folder bundle dist/sealcheck/ (executable dist/sealcheck/sealcheck) from a
# checkout. Needs the project's Python environment with the "gui" and "package" extras:
# `./dev package` sets that up and calls this script.
#   PYTHON=path/to/python packaging/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
start=$(date +%s)

# 1. Stage a real (non-editable) install of the project: the sealcheck.* package layout
#    from the package-dir mapping, plus the dist-info whose entry points add `gui`/`demo`.
stage=build/stage
# (build/lib is setuptools' copy of the sources: a stale one would ship removed modules)
rm -rf "$stage" build/wheel build/lib build/bdist.*
"$PY" -m pip wheel -q --no-deps -w build/wheel .
"$PY" -m pip install -q --no-deps --no-compile --target "$stage" build/wheel/sealcheck-*.whl

# 2. Freeze. `sealcheck demo` runs moto's S3 server (the "test" extra): without moto in
#    this environment the bundle is built without the demo's server, and says so.
if [ "${SEALCHECK_BUNDLE_DEMO:-1}" != 0 ] && ! "$PY" -c 'import moto.server' 2>/dev/null; then
  echo "build.sh: moto is not installed: building without the demo's S3 server" >&2
  export SEALCHECK_BUNDLE_DEMO=0
fi
SEALCHECK_STAGE="$PWD/$stage" "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/sealcheck.spec

# 3. Desktop files beside the executable (for installing into a prefix or an AppDir).
share=dist/sealcheck/share
mkdir -p "$share/applications" "$share/metainfo" "$share/icons/hicolor/scalable/apps" \
  "$share/icons/hicolor/symbolic/apps"
id=io.github.sealcheck.Sealcheck
cp "resources/$id.desktop" "$share/applications/"
cp "resources/$id.metainfo.xml" "$share/metainfo/"
cp "resources/$id.svg" "$share/icons/hicolor/scalable/apps/"
cp "resources/$id-symbolic.svg" "$share/icons/hicolor/symbolic/apps/"

echo "bundle: dist/sealcheck ($(du -sh dist/sealcheck | cut -f1)), built in $(( $(date +%s) - start )) s"

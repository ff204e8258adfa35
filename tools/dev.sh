#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv from nothing (pinned packages,
# system libraries headless Blender needs), then runs a verb. Safe to run again.
#   tools/dev.sh setup     environment only
#   tools/dev.sh test      ruff format --check, ruff check, pytest
#   tools/dev.sh demo      the main job (see README)
#   tools/dev.sh <verb> …  python -m physface <verb> …
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.physface-requirements"

system_libs() {
  # Headless bpy loads these shared libraries; install them only when missing.
  local need=()
  for lib in libxi.so.6:libxi6 libxxf86vm.so.1:libxxf86vm1 libxfixes.so.3:libxfixes3 \
             libxrender.so.1:libxrender1 libgl.so.1:libgl1 libsm.so.6:libsm6 \
             libxkbcommon.so.0:libxkbcommon0; do
    if ! ldconfig -p | grep -qi "${lib%%:*}"; then need+=("${lib##*:}"); fi
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "physface: installing system libraries: ${need[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

setup() {
  system_libs
  if [ ! -x "$PY" ]; then
    echo "physface: creating $VENV"
    python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  fi
  if ! cmp -s "$ROOT/requirements.txt" "$STAMP"; then
    echo "physface: installing pinned packages (requirements.txt)"
    "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.txt"
    cp "$ROOT/requirements.txt" "$STAMP"
  fi
  # Make the repository importable as the package ``physface`` (its folder name may differ).
  local site
  site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  mkdir -p "$VENV/src"
  ln -sfn "$ROOT" "$VENV/src/physface"
  echo "$VENV/src" > "$site/physface-src.pth"
}

verb="${1:-}"
[ $# -gt 0 ] && shift
setup
export PHYSFACE_CACHE="${PHYSFACE_CACHE:-$ROOT/.cache}"
case "$verb" in
  setup) ;;
  test)
    cd "$ROOT"
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/ruff" check .
    "$PY" -m pytest "$@"
    ;;
  "") echo "usage: tools/dev.sh setup|test|demo|<verb> [args]"; exit 2 ;;
  *) cd "$ROOT"; exec "$PY" -m physface "$verb" "$@" ;;
esac

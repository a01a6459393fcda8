#!/usr/bin/env bash
# Set up lms-bridge for development, the demo and the tests (idempotent, quick when done):
#   Debian     the packages missing on a fresh Debian 12 (scripts/system-packages.sh; --test: those the whole
#              suite needs), installed when root, else the exact apt-get line and exit 2
#   .venv      lms-bridge itself, editable, with the dev and postgres extras
#   .venv-lrs  Ralph LRS 5.1.0 in its own venv: its exact pins clash with ours (docs/lrs.md §1)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh "$@"

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "lms-bridge needs Python >= 3.11 with venv (set PYTHON=/path/to/python3.11)" >&2
  return 1
}
PY=$(pick_python)

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
stamp=.venv/.lms-bridge-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  echo "setup: installing lms-bridge into .venv"
  .venv/bin/pip install --quiet -e '.[dev]'
  touch "$stamp"
fi

if ! .venv-lrs/bin/python -c 'import ralph, requests, uvicorn, bcrypt' >/dev/null 2>&1; then
  echo "setup: installing Ralph LRS 5.1.0 into .venv-lrs"
  "$PY" -m venv .venv-lrs
  .venv-lrs/bin/pip install --quiet --upgrade pip
  # requests is an undeclared dependency of ralph's API (docs/lrs.md §1).
  .venv-lrs/bin/pip install --quiet 'ralph-malph[lrs]==5.1.0' requests
fi
echo "setup: ready (.venv, .venv-lrs)"

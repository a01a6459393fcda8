#!/usr/bin/env bash
# The demo on embedded defaults: set up, start a local Ralph LRS, run the main job on the
# bundled demo data, show what landed in the LRS, stop what was started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m scripts.demo "$@"

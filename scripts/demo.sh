#!/usr/bin/env bash
# The demo on embedded defaults, from a checkout: set up, then `lms-bridge demo` (a fake Moodle and a local
# Ralph LRS, the main job on the bundled demo data, what landed, then the HR page until Ctrl-C).
# Options go to lms-bridge demo: --keep, --no-web, --port N, --dir DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/lms-bridge demo "$@"

#!/usr/bin/env bash
# The test command (README, CI): set up if needed, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
exec .venv/bin/python -m pytest "$@"

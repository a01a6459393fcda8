#!/usr/bin/env bash
# The installed product, outside the checkout (issue 22): build the wheel, install it in a clean venv, then
# from an empty folder run `lms-bridge init` and `lms-bridge demo --no-web` (Ralph from the checkout's
# .venv-lrs, through LMS_BRIDGE_LRS_VENV, since its pins clash with ours). Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/lms-bridge-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$SECONDS
.venv/bin/pip wheel --quiet --no-deps --wheel-dir "$work/dist" .
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$work"/dist/lms_bridge-*.whl
echo "wheel: built and installed in a clean venv in $((SECONDS - started)) s"
mkdir "$work/empty"
cd "$work/empty"
env -u PYTHONPATH "$work/venv/bin/lms-bridge" init --no-input --institution "BKPSDM Uji Wheel"
test -f lms-bridge.toml && test "$(stat -c %a secrets.env)" = 600
started=$SECONDS
env -u PYTHONPATH LMS_BRIDGE_LRS_VENV="$root/.venv-lrs" "$work/venv/bin/lms-bridge" demo --no-web --dir "$work/demo" \
  > "$work/demo.log" 2>&1 || { tail -40 "$work/demo.log"; exit 1; }
grep -q "demo done" "$work/demo.log"
echo "wheel: lms-bridge init and lms-bridge demo --no-web ran from an empty folder ($((SECONDS - started)) s for the demo)"

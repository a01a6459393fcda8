#!/usr/bin/env bash
# The Debian packages lms-bridge needs on a fresh Debian 12 machine, installed when run as root, else one
# exact `apt-get install` line and exit 2. Called by scripts/setup.sh (the demo and the tests) and so by .ci/run.
#   scripts/system-packages.sh          what the demo needs: Python 3.11 with venv
#   scripts/system-packages.sh --test   and what the whole test suite needs: PostgreSQL (unless one answers on
#                                       127.0.0.1:5432 or $LMS_BRIDGE_TEST_PG_URL is set), Redis and RabbitMQ
#                                       (the distributed tests start their own), Chromium and its driver (the
#                                       browser tests), git (a test lists tracked files). PHP for the
#                                       real-Moodle suite is installed by the kit's own start.sh when that
#                                       suite runs.
set -euo pipefail

want=()
has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

if ! python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null &&
   ! python3.11 -c 'import venv, ensurepip' 2>/dev/null; then
  want+=(python3 python3-venv python3-dev)
fi
if [ "${1:-}" = "--test" ]; then
  if [ -z "${LMS_BRIDGE_TEST_PG_URL:-}" ] && ! has initdb && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 &&
     ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    want+=(postgresql)
  fi
  has redis-server || want+=(redis-server)
  has rabbitmq-server || want+=(rabbitmq-server)
  [ -x /usr/bin/chromium ] || want+=(chromium)
  [ -x /usr/bin/chromedriver ] || want+=(chromium-driver)
  # tests/test_docs_references.py lists the tracked files with git ls-files (a fresh Debian 12 root has no git).
  has git || want+=(git)
fi

if [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages; as root run: apt-get install -y ${want[*]}" >&2
    exit 2
  fi
  echo "setup: installing Debian packages: ${want[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
fi

# The distributed tests start their own throw-away redis-server, but run on RabbitMQ in a throw-away vhost of
# the machine's server (tests/fixtures/brokers.py): make sure it runs (it does not under a bare chroot or
# container without an init system).
if [ "${1:-}" = "--test" ] && ! rabbitmqctl -q status >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: RabbitMQ is not running; as root run: rabbitmq-server -detached" >&2
    exit 2
  fi
  echo "setup: starting RabbitMQ"
  rabbitmq-server -detached
  for _ in $(seq 1 60); do rabbitmqctl -q status >/dev/null 2>&1 && break; sleep 2; done
fi

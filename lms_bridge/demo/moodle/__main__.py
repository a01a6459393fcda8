"""Run the fake Moodle: ``python -m lms_bridge.demo.moodle --preset small --port 0 --token T``.

Prints the URL it listens on (one line on stdout), then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import CAPTURED_LATENCY, FakeMoodle


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the server, print its URL and wait for a signal."""
    parser = argparse.ArgumentParser(prog="python -m lms_bridge.demo.moodle", description=__doc__)
    parser.add_argument("--preset", default="small", choices=("small", "fixture"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--token", default="tok-admin", help="admin token")
    parser.add_argument("--limited-token", default=None, help="token of a user without capabilities")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    parser.add_argument("--captured-latency", action="store_true", help="per-function latency of the fixture site")
    parser.add_argument("--max-concurrent", type=int, default=None, help="simultaneous calls (PHP-FPM workers)")
    parser.add_argument("--debug", action="store_true", help="add debuginfo to errors")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    latency = dict(CAPTURED_LATENCY) if args.captured_latency else {}
    if args.latency:
        latency["*"] = args.latency
    fake = FakeMoodle(
        preset=args.preset,
        seed=args.seed,
        token=args.token,
        limited_token=args.limited_token,
        port=args.port,
        latency=latency,
        max_concurrent=args.max_concurrent,
        debug=args.debug,
    )
    with fake:
        print(fake.url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 23 item 3: the HR web page under load, and the XLSX download of 50,000 rows.

    .venv/bin/python -m bench.web                          # 100,000 people, 1,000,000 JP records, 20 users, 60 s
    .venv/bin/python -m bench.web --people 10000 --records 100000 --seconds 20
    .venv/bin/python -m bench.web --xlsx-only --compare /work/main    # the workbook alone, this code and another

The ledger is filled as in ``bench.report`` (roster of ``--people`` over 200 units, ``--records`` JP records of
2026, straight into SQLite). ``lms-bridge serve-web`` (waitress) then serves it on 127.0.0.1, and ``--users``
threads of this process (each its own ``requests`` session, logged in through the form) ask in turn for the
overview (``/compliance``: every unit's summary and the first page of people) and one unit's compliance
table (``/compliance?unit=...``) until ``--seconds`` have passed or each made ``--max-requests``; every
answer must be 200. Goal: p95 < 300 ms, no error.

The workbook: ``export.hr_workbook`` writes one sheet of 50,000 compliance rows in a fresh process
(peak RSS from ``VmHWM``); goal < 5 s. ``--compare DIR`` runs the same in the code of DIR (e.g. main) for the
memory and time it used, and then serves the same ledger with DIR's ``serve-web`` under the same load (old and new
in one run; ``--compare-first`` runs DIR's first). Each page figure has the server's CPU per page (``/proc``), the
clients' and the load average beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Report, make_deployment, print_machine, scratch  # noqa: E402

P95_GOAL_MS = 300
XLSX_GOAL_S = 5.0
PASSWORD = "bench-web-password-0123"  # noqa: S105 - a benchmark user


#: Run by ``python -c`` with ``PYTHONPATH`` set to the code to time (so ``--compare`` can time another checkout).
XLSX_SCRIPT = """
import json, os, sys, time
from decimal import Decimal
from pathlib import Path

from lms_bridge.ledger import export


def vm_hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


rows = int(sys.argv[1])
columns = export.compliance_people_columns("id")
data = [
    [
        f"U{i % 200:04d}",
        f"Unit Kerja {i % 200}",
        f"19880517201403{i % 2 + 1}{i % 1000:03d}",
        f"Pegawai Nomor {i}",
        "PNS",
        Decimal(i % 4000) / 100,
        20,
        max(Decimal(0), 20 - Decimal(i % 4000) / 100),
        (i % 4000) / 2000,
        "Belum memenuhi" if i % 4000 < 2000 else "Sudah memenuhi",
        i % 3,
    ]
    for i in range(rows)
]
sheet = export.Sheet("Semua", columns, data, flag=export.NEEDED_COLUMN)
base = vm_hwm()
path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-web-{os.getpid()}.xlsx"
started, cpu = time.perf_counter(), time.process_time()
export.hr_workbook([sheet], ["Instansi - Rekap JP 2026", "per 31 Desember 2026", "dibuat"], path, "id")
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
size = path.stat().st_size
path.unlink()
print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": vm_hwm(), "base_mb": base, "bytes": size}))
"""


def time_xlsx(code: Path, rows: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", XLSX_SCRIPT, str(rows)],
        capture_output=True,
        text=True,
        cwd=code,
        # The code to time first; the rest of PYTHONPATH (e.g. packages installed beside the venv) after it.
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH", "")]))},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"xlsx child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _login(base: str):  # type: ignore[no-untyped-def]
    import requests

    client = requests.Session()
    page = client.get(f"{base}/login", timeout=60)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    if token is None:
        raise SystemExit("no CSRF token on the login page")
    answer = client.post(
        f"{base}/login",
        data={"csrf_token": token.group(1), "username": "hr", "password": PASSWORD, "next": ""},
        timeout=60,
        allow_redirects=False,
    )
    if answer.status_code != 302:
        raise SystemExit(f"login answered {answer.status_code}")
    return client


def load_test(base: str, units: list[str], users: int, seconds: float, max_requests: int) -> dict:
    """``users`` logged-in clients, overview and one unit's table in turn; latencies in ms by page."""
    clients = [_login(base) for _ in range(users)]
    deadline = time.perf_counter() + seconds
    lock = threading.Lock()
    latencies: dict[str, list[float]] = {"overview": [], "unit": []}
    errors: list[str] = []

    def user(index: int) -> None:
        client = clients[index]
        for n in range(max_requests):
            if time.perf_counter() >= deadline:
                return
            page = "overview" if n % 2 == 0 else "unit"
            url = f"{base}/compliance?year=2026" + (
                f"&unit={units[(index + n) % len(units)]}" if page == "unit" else ""
            )
            started = time.perf_counter()
            try:
                answer = client.get(url, timeout=120, allow_redirects=False)
                status = answer.status_code
            except Exception as exc:  # noqa: BLE001 - counted as an error
                status = f"{exc.__class__.__name__}"
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies[page].append(elapsed)
                if status != 200:
                    errors.append(f"{url}: {status}")

    started = time.perf_counter()
    with ThreadPoolExecutor(users) as pool:
        list(pool.map(user, range(users)))
    wall = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "wall": wall}


def _p(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def bench_page(args: argparse.Namespace, report: Report) -> None:
    from bench.report import Data, load
    from lms_bridge.store.db import open_engine
    from lms_bridge.web.users import add_user

    folder = args.keep_dir or scratch("web")
    loaded = args.keep_dir is not None and (folder / "state.db").exists()
    deployment = make_deployment(folder)
    deployment.config.write_text(deployment.config.read_text() + '\n[report]\ninstitution = "BKPSDM Bench"\n')
    url = f"sqlite:///{deployment.db}"
    data = Data(args.people, 200, args.records, 0.01, 7)
    engine = open_engine(url)
    try:
        if loaded:
            report.note(f"re-using the ledger in {folder} (loaded by an earlier run with --keep-dir)")
        else:
            seconds, rows = load(engine, data)
            add_user(engine, "hr", PASSWORD)
            report.note(f"loaded {len(data.nips):,} people, {rows:,} ledger rows in {seconds:.1f} s")
    finally:
        engine.dispose()
    units = [code for code, _ in data.units[:20]]
    compare = Path(args.compare) if args.compare else None
    runs = [(ROOT, "")] + ([(compare, f"_{compare.name}")] if compare is not None else [])
    if args.compare_first:
        runs.reverse()
    for code, suffix in runs:
        result = serve_and_load(args, report, deployment, folder, code, units)
        label = f" ({code})" if compare is not None else ""
        every = result["latencies"]["overview"] + result["latencies"]["unit"]
        for page, values in (*result["latencies"].items(), ("all", every)):
            p95 = _p(values, 0.95)
            report.figure(
                f"web_{page}_p95{suffix}",
                round(p95),
                "ms",
                goal=f"< {P95_GOAL_MS} ms" if not suffix else None,
                met=(p95 < P95_GOAL_MS and bool(values)) if not suffix else None,
                detail=f"{len(values)} requests, p50 {_p(values, 0.5):.0f} ms, max {max(values, default=0):.0f} ms, "
                f"mean {statistics.fmean(values) if values else 0:.0f} ms{label}",
            )
        report.figure(
            f"web_server_cpu_per_page_ms{suffix}",
            round(result["server_cpu"] * 1000 / max(len(every), 1), 1),
            "ms",
            detail=f"server CPU {result['server_cpu']:.1f} s for {len(every)} pages in {result['wall']:.1f} s wall "
            f"(the server got {result['server_cpu'] / result['wall']:.2f} of a core; the {args.users} clients of this "
            f"process {result['client_cpu'] * 1000 / max(len(every), 1):.1f} ms a page); load average "
            f"{result['load_before']:.1f} before, {result['load_after']:.1f} after{label}",
        )
        report.figure(
            f"web_errors{suffix}",
            len(result["errors"]),
            goal="0" if not suffix else None,
            met=not result["errors"] if not suffix else None,
            detail=f"{args.users} users for {result['wall']:.0f} s; " + "; ".join(result["errors"][:3]) + label,
        )


def serve_and_load(  # type: ignore[no-untyped-def]
    args: argparse.Namespace, report: Report, deployment, folder: Path, code: Path, units: list[str]
) -> dict:
    """``serve-web`` running the code in ``code`` on the ledger in ``folder``, and the load test against it."""
    port = _free_port()
    env = {
        **deployment.env,
        "LMS_BRIDGE_WEB_SECRET_KEY": "bench-web-secret-key-0123456789abcdef",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH", "")])),
    }
    # The server's log goes to a file: a pipe nobody reads fills up (64 KB of waitress's "task queue depth"
    # warnings under load) and then blocks the server's main loop, which is what the first figures measured.
    log_path = folder / "serve-web.log"
    server_log = log_path.open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lms_bridge.cli",
            "--config",
            str(deployment.config),
            "-q",
            "serve-web",
            "--port",
            str(port),
        ],
        env=env,
        cwd=code,
        stdout=subprocess.DEVNULL,
        stderr=server_log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("serve-web did not listen")
        warm = _login(base)
        started = time.perf_counter()
        warm.get(f"{base}/compliance?year=2026", timeout=300).raise_for_status()
        report.note(f"{code}: one overview alone (warm-up): {(time.perf_counter() - started) * 1000:.0f} ms")
        load_before, server_before, client_before = os.getloadavg()[0], _cpu_of(server.pid), time.process_time()
        result = load_test(base, units, args.users, args.seconds, args.max_requests)
        result["server_cpu"] = _cpu_of(server.pid) - server_before
        result["client_cpu"] = time.process_time() - client_before
        result["load_before"], result["load_after"] = load_before, os.getloadavg()[0]
        started = time.perf_counter()
        xlsx = warm.get(f"{base}/compliance.xlsx?year=2026&unit={units[0]}", timeout=300)
        report.note(
            f"{code}: one unit's XLSX over HTTP: {(time.perf_counter() - started) * 1000:.0f} ms, "
            f"{len(xlsx.content):,} bytes"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        server_log.close()
    warnings = log_path.read_text(errors="replace").count("Task queue depth")
    report.note(f"{code}: waitress 'task queue depth' warnings: {warnings} (requests waiting for one of its threads)")
    return result


def bench_xlsx(args: argparse.Namespace, report: Report) -> None:
    new = time_xlsx(ROOT, args.xlsx_rows)
    report.figure(
        "xlsx_50k_seconds",
        round(new["seconds"], 2),
        "s",
        goal=f"< {XLSX_GOAL_S:g} s",
        met=new["seconds"] < XLSX_GOAL_S,
        detail=f"{args.xlsx_rows:,} rows, CPU {new['cpu']:.2f} s, load average {os.getloadavg()[0]:.1f}, "
        f"{new['bytes']:,} bytes, "
        f"peak RSS {new['peak_mb']:.0f} MB ({new['base_mb']:.0f} MB with the rows built, before writing)",
    )
    report.figure(
        "xlsx_50k_rss_over_rows",
        round(new["peak_mb"] - new["base_mb"]),
        "MB",
        detail="peak RSS while writing minus the RSS with the rows in memory",
    )
    if args.compare:
        old = time_xlsx(Path(args.compare), args.xlsx_rows)
        report.figure(
            f"xlsx_50k_seconds_{Path(args.compare).name}",
            round(old["seconds"], 2),
            "s",
            detail=f"the writer of {args.compare}: CPU {old['cpu']:.2f} s, peak RSS {old['peak_mb']:.0f} MB "
            f"({old['peak_mb'] - old['base_mb']:.0f} MB over the rows), {old['bytes']:,} bytes",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-requests", type=int, default=200)
    parser.add_argument("--xlsx-rows", type=int, default=50_000)
    parser.add_argument("--xlsx-only", action="store_true")
    parser.add_argument(
        "--compare",
        default="",
        help="a checkout whose XLSX writer (and, without --xlsx-only, web page) to time as well",
    )
    parser.add_argument("--compare-first", action="store_true", help="load the --compare checkout's server first")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--keep-dir", type=Path, default=None, help="load the ledger into DIR once and re-use it in later runs"
    )
    args = parser.parse_args()
    print_machine()
    report = Report("bench_web")
    bench_xlsx(args, report)
    if not args.xlsx_only:
        bench_page(args, report)
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())

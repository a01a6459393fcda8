"""Benchmarks 1, 2 and 4 of issue 9: full Moodle sync against the server-bound floor, incremental syncs, memory.

    .venv/bin/python -m bench.sync full          # ~9-10 min: 3 full syncs of the 10,000-user site
    .venv/bin/python -m bench.sync incremental   # ~4-7 min: nothing new (twice) / 1 % active / the daily
                                                 # re-check of the last 7 days, 1k vs 10k users
    .venv/bin/python -m bench.sync memory        # ~1 min: peak RSS of a full sync, 1,000 vs 10,000 users

Every sync is the real CLI (``lms-bridge sync``) in a subprocess against a fake Moodle in this process
(see ``bench/common.py``: captured-site latency model, PHP-FPM-like worker limit, busy-time
accounting). Figures print as ``FIGURE`` lines; the exit code is 1 when a goal is missed.

``full``: the floor is ``server busy seconds / workers``: no client can finish sooner. The captured
timings make a 10,000-user full sync ~1,500 s of server work (~12 min at 2 workers), so the model is
scaled by ``--latency-scale`` (default 0.15) to keep the benchmark under 10 minutes; the ratio to the
floor is what is compared. Runs, in this order: lms-bridge with its defaults (4 in flight) against 2
workers; lms-bridge with ``max_in_flight = 1`` (strictly sequential); lms-bridge with its defaults
against 4 workers.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    FIXTURE_TIMINGS,
    TOKEN,
    USERS_1K,
    BenchMoodle,
    Report,
    make_deployment,
    outbox_count,
    print_machine,
    run_cli,
    scratch,
)

SHORT = {
    "core_course_get_courses": "courses",
    "mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses": "bbb",
    "core_enrol_get_enrolled_users": "enrolled",
    "core_completion_get_course_completion_status": "course_compl",
    "core_completion_get_activities_completion_status": "activity_compl",
    "mod_forum_get_forums_by_courses": "forums",
    "mod_forum_get_forum_discussions": "discussions",
    "mod_forum_get_discussion_posts": "posts",
    "mod_assign_get_assignments": "assignments",
    "mod_assign_get_grades": "grades",
    "mod_bigbluebuttonbn_meeting_info": "meeting_info",
}


def _calls(snapshot: dict) -> str:
    return ", ".join(f"{SHORT.get(name, name)} {entry['calls']}" for name, entry in snapshot["functions"].items())


def _sync(fake: BenchMoodle, folder: Path, source_options: str = "") -> tuple[dict, object, int]:
    deployment = make_deployment(folder, moodle_url=fake.url, source_options=source_options)
    fake.reset_stats()
    run = run_cli(deployment, "sync").check()
    return fake.snapshot(), run, outbox_count(deployment.db)


def bench_full(report: Report, scale: float, seed: int) -> None:
    work = scratch("sync-full")
    with BenchMoodle(
        preset="fixture", seed=seed, token=TOKEN, timings=FIXTURE_TIMINGS, scale=scale, max_concurrent=2
    ) as fake:
        report.note(f"fixture site: {fake.data.counts()}")
        report.note(f"latency model: captured timings x {scale:g}; server workers 2, then 4")

        snap, run, statements = _sync(fake, work / "w2")
        floor = snap["busy"] / 2
        report.figure(
            "full_sync.wall_w2",
            run.wall,
            "s",
            detail=f"4 in flight, 2 server workers, peak RSS {run.max_rss_mb:.0f} MB, client CPU {run.cpu:.1f} s",
        )
        report.figure("full_sync.calls", snap["calls"], "calls", detail=_calls(snap))
        report.figure("full_sync.bytes", snap["bytes"], "bytes")
        report.figure("full_sync.statements", statements, "statements")
        report.figure("full_sync.server_busy", snap["busy"], "s", detail=f"floor at 2 workers {floor:.1f} s")
        ratio = run.wall / floor
        report.figure("full_sync.ratio_to_floor_w2", ratio, "x", goal="<= 1.25x", met=ratio <= 1.25)

        snap_seq, run_seq, statements_seq = _sync(fake, work / "seq", "max_in_flight = 1\n")
        report.figure(
            "full_sync.wall_sequential",
            run_seq.wall,
            "s",
            detail=f"max_in_flight = 1, {snap_seq['calls']} calls, {statements_seq} statements, "
            f"ratio to busy {run_seq.wall / snap_seq['busy']:.2f}",
        )
        speedup = run_seq.wall / run.wall
        report.figure(
            "full_sync.speedup_vs_sequential_w2",
            speedup,
            "x",
            goal=">= 3x",
            met=speedup >= 3,
            detail="2 server workers: 2x is the most any client can get",
        )

        fake.set_max_concurrent(4)
        snap4, run4, statements4 = _sync(fake, work / "w4")
        floor4 = snap4["busy"] / 4
        report.figure(
            "full_sync.wall_w4",
            run4.wall,
            "s",
            detail=f"4 in flight, 4 server workers, floor {floor4:.1f} s, client CPU {run4.cpu:.1f} s",
        )
        report.figure(
            "full_sync.ratio_to_floor_w4",
            run4.wall / floor4,
            "x",
            detail="informative: 4 workers = the client's max_in_flight",
        )
        speedup4 = run_seq.wall / run4.wall
        report.figure("full_sync.speedup_vs_sequential_w4", speedup4, "x", goal=">= 3x", met=speedup4 >= 3)
        if not statements == statements_seq == statements4:
            report.figure(
                "full_sync.same_statements", f"{statements}/{statements_seq}/{statements4}", goal="equal", met=False
            )


def _activate(fake: BenchMoodle, users: int) -> int:
    """Make about 1 % of users active: completions, webinar attendance and forum posts. Returns distinct users."""
    share = max(1, users // 100)
    active: set[int] = set()
    active.update(uid for _, uid in fake.add_completions(share * 4 // 10))
    active.update(uid for _, uid in fake.add_attendance(share * 2 // 10))
    for post_id in fake.add_posts(share - len(active)):
        active.add(fake.data.posts[post_id].userid)
    return len(active)


def bench_incremental(report: Report, scale: float, seed: int) -> None:
    work = scratch("sync-incr")
    figures: dict[str, dict[str, dict]] = {}
    for label, preset in (("1k", USERS_1K), ("10k", "fixture")):
        with BenchMoodle(preset=preset, seed=seed, token=TOKEN, max_concurrent=2) as fake:
            users = fake.data.counts()["users"]
            deployment = make_deployment(work / label, moodle_url=fake.url)
            run_cli(deployment, "sync").check()  # the full sync, without latency: only the state matters
            before = outbox_count(deployment.db)
            fake.set_model(FIXTURE_TIMINGS, scale)
            results: dict[str, dict] = {}
            # nothing_new: the first sync after the full sync; it re-checks the accesses the full sync read
            # less than COMPLETION_SETTLE (1 h, server time) after they happened (cron-aggregated completion).
            # nothing_new_again: the next one. Each re-asks those accesses until an hour of client time has
            # passed since their first ask (then once more, then never): minutes apart here, so both ask them.
            # recheck: serve's daily rolling re-check (issue 17): the completion streams re-read from 7 days
            # before the site's clock, as ``recheck:<site>`` does from 7 days before the machine's.
            for case in ("nothing_new", "nothing_new_again", "one_percent", "recheck"):
                if case == "one_percent":
                    active = _activate(fake, users)
                fake.reset_stats()
                if case == "recheck":
                    since = datetime.fromtimestamp(fake.data.clock - 7 * 86400, UTC).strftime("%Y-%m-%dT%H:%M")
                    streams = ("--stream", "course_completions", "--stream", "activity_completions")
                    run = run_cli(deployment, "backfill", "--site", "bench", "--since", since, *streams).check()
                else:
                    run = run_cli(deployment, "sync").check()
                snap = fake.snapshot()
                added = outbox_count(deployment.db) - before
                before += added
                results[case] = {"calls": snap["calls"], "wall": run.wall, "snap": snap, "new": added}
                who = f", {active} users active" if case == "one_percent" else ""
                report.figure(
                    f"incremental.{case}.{label}.calls",
                    snap["calls"],
                    "calls",
                    detail=f"{users} users{who}; {_calls(snap)}",
                )
                report.figure(
                    f"incremental.{case}.{label}.wall",
                    run.wall,
                    "s",
                    detail=f"server busy {snap['busy']:.1f} s, {added} new statements",
                )
            figures[label] = results
    for case in ("nothing_new", "nothing_new_again", "one_percent", "recheck"):
        small, large = figures["1k"][case]["calls"], figures["10k"][case]["calls"]
        goal = (
            {"goal": "<= 1.1x (calls do not grow with users)", "met": large <= 1.1 * small}
            if case == "nothing_new"
            else {}
        )
        report.figure(f"incremental.{case}.calls_10k_over_1k", large / small, "x", **goal)
    report.note(f"latency model: captured timings x {scale:g}, 2 server workers")


def bench_memory(report: Report, seed: int) -> None:
    work = scratch("sync-mem")
    rss: dict[str, float] = {}
    for label, preset in (("1k", USERS_1K), ("10k", "fixture")):
        with BenchMoodle(preset=preset, seed=seed, token=TOKEN, max_concurrent=2) as fake:
            snap, run, statements = _sync(fake, work / label)
            rss[label] = run.max_rss_mb
            report.figure(
                f"memory.peak_rss.{label}",
                run.max_rss_mb,
                "MB",
                detail=f"{fake.data.counts()['users']} users, {statements} statements, {snap['calls']} "
                f"calls, wall {run.wall:.1f} s (no latency)",
            )
    idle = run_cli(make_deployment(work / "idle"), "outbox", "status").check()
    report.figure("memory.peak_rss.idle_cli", idle.max_rss_mb, "MB", detail="lms-bridge outbox status: the fixed cost")
    ratio = rss["10k"] / rss["1k"]
    report.figure("memory.ratio_10k_over_1k", ratio, "x", goal="< 1.5x", met=ratio < 1.5)
    report.figure(
        "memory.growth_over_idle_10k_over_1k",
        (rss["10k"] - idle.max_rss_mb) / max(1.0, rss["1k"] - idle.max_rss_mb),
        "x",
        detail="informative: memory above the idle CLI",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=("full", "incremental", "memory", "all"), default="all")
    parser.add_argument(
        "--latency-scale",
        type=float,
        default=0.15,
        help="multiplies the captured timings (full: default 0.15; incremental uses 1.0 unless set)",
    )
    parser.add_argument("--incremental-scale", type=float, default=1.0, help="latency scale of the incremental runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print_machine()
    report = Report(f"bench_sync {args.what}")
    if args.what in ("full", "all"):
        bench_full(report, args.latency_scale, args.seed)
    if args.what in ("incremental", "all"):
        bench_incremental(report, args.incremental_scale, args.seed)
    if args.what in ("memory", "all"):
        bench_memory(report, args.seed)
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())

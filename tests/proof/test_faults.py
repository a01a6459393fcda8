"""Faults: the fake Moodle resets, 502s, cuts and stalls responses and revokes the token mid-run; Ralph
answers 500s, answers too late, and is stopped and restarted mid-flush.

After the faults clear, the LRS holds exactly the statements of an uninterrupted run (nothing lost,
nothing twice), and each fault produced one clear log line naming what happened.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.fixtures.lrs import FaultyLRS
from tests.proof.support import (
    ADMIN_TOKEN,
    SITE,
    content,
    diff_summary,
    log_lines,
    make_deployment,
    start_ralph,
)

pytestmark = pytest.mark.proof

_log_lines = log_lines


def _assert_same(reference, lrs) -> None:  # type: ignore[no-untyped-def]
    got = content(lrs)
    assert got == reference.content, diff_summary(reference.content, got)


def test_moodle_resets_502s_cut_and_stalled_responses_are_retried_with_one_line_each(moodle, sync_reference):
    moodle.inject_fault("core_enrol_get_enrolled_users", kind="truncate", after=2)
    moodle.inject_fault("core_completion_get_activities_completion_status", kind="reset", after=10)
    moodle.inject_fault("mod_forum_get_discussion_posts", kind="http502", after=3)
    moodle.inject_fault("core_completion_get_course_completion_status", kind="slow", after=5, delay=2.5)
    lrs = start_ralph()
    try:
        deployment = make_deployment(
            "faults-moodle", lrs_url=lrs.url, moodle_url=moodle.url, source_options="timeout = 1\n"
        )
        sync = deployment.run("sync")
        deployment.run("jp", "compute")
        deployment.run("outbox", "flush")
        retries = _log_lines(sync.stderr, "retry 1 of")
        print("\n".join(retries))
        assert len(retries) == 4, sync.stderr
        for function, cause in (
            ("core_enrol_get_enrolled_users", "the response is not complete JSON"),
            ("core_completion_get_activities_completion_status", "connection failed or was reset"),
            ("mod_forum_get_discussion_posts", "HTTP 502"),
            ("core_completion_get_course_completion_status", "no answer within 1 s"),
        ):
            lines = _log_lines(sync.stderr, function, cause)
            assert len(lines) == 1 and f"Moodle site {SITE}" in lines[0], (function, sync.stderr)
        assert "Traceback" not in sync.stderr
        _assert_same(sync_reference, lrs)
    finally:
        lrs.stop()


def test_token_revoked_mid_run_stops_the_site_with_one_sentence_then_a_rerun_completes(moodle, sync_reference):
    lrs = start_ralph()
    try:
        deployment = make_deployment("faults-token", lrs_url=lrs.url, moodle_url=moodle.url)
        moodle.revoke_after = moodle.call_number + 150  # inside the completion streams
        failed = deployment.run("sync", check=False)
        assert failed.returncode == 1
        last = failed.stderr.strip().splitlines()[-1]
        print(failed.stderr)
        assert last.startswith("error: Moodle site proofsite") and "invalidtoken" in last, failed.stderr
        assert "create a new one" in last  # the hint
        assert len(_log_lines(failed.stderr, "invalidtoken")) == 1, failed.stderr
        assert "Traceback" not in failed.stderr and ADMIN_TOKEN not in failed.stdout + failed.stderr
        runs = deployment.query("select status, error from runs where command = 'sync'")
        assert [status for status, _ in runs] == ["failed"] and "invalidtoken" in runs[0][1]
        kept = dict(deployment.query("select stream, position from cursors"))
        assert "enrolled_users" in kept  # what was committed before the fault stays committed

        moodle.revoke_after = None
        deployment.run("sync")
        deployment.run("jp", "compute")
        deployment.run("outbox", "flush")
        _assert_same(sync_reference, lrs)
    finally:
        lrs.stop()


def _queued(name: str, moodle, lrs_url: str, lrs_options: str = ""):  # type: ignore[no-untyped-def]
    deployment = make_deployment(name, lrs_url=lrs_url, moodle_url=moodle.url, lrs_options=lrs_options)
    deployment.run("sync")
    deployment.run("jp", "compute")
    return deployment


def test_lrs_500s_and_a_too_late_answer_are_retried_with_one_line_each(moodle, sync_reference):
    lrs = start_ralph()
    try:
        with FaultyLRS(lrs.url, slow_seconds=2.5) as proxy:
            deployment = _queued("faults-lrs-500", moodle, proxy.url, "timeout = 1\n")
            plan = {2: "500", 5: "slow", 9: "500"}
            proxy.on_post = lambda number: plan.get(number, "ok")
            flush = deployment.run("outbox", "flush")
        failures = _log_lines(flush.stderr, "WARNING", "attempt", "failed")
        print("\n".join(failures))
        assert len(failures) == 3, flush.stderr
        assert sum("answered HTTP 500" in line for line in failures) == 2
        assert sum("did not answer within 1 s" in line for line in failures) == 1
        assert "3 failed attempts" in flush.stderr
        _assert_same(sync_reference, lrs)  # the late answer's batch was stored once, not twice
    finally:
        lrs.stop()


def test_lrs_stopped_and_restarted_mid_flush_loses_and_doubles_nothing(moodle, sync_reference):
    lrs = start_ralph()
    port, folder = lrs.port, lrs.dir
    try:
        deployment = _queued("faults-lrs-restart", moodle, lrs.url, "max_attempts = 60\n")
        total = deployment.outbox_count()
        flush = deployment.popen("outbox", "flush", env={"LMS_BRIDGE_LRS__BATCH_SIZE": "2"})
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and len(deployment.query("select id from outbox where status = 'sent' limit 40")) < 40
        ):
            time.sleep(0.01)
        lrs.stop()
        pending_at_stop = deployment.query("select count(*) from outbox where status = 'pending'")[0][0]
        time.sleep(1.0)
        lrs = start_ralph(port=port, data_dir=folder)
        out, err = flush.communicate(timeout=300)
        assert flush.returncode == 0, err
        assert 0 < pending_at_stop < total, "the LRS was not stopped mid-flush"
        failures = _log_lines(err, "WARNING", "attempt", "failed")
        print(f"pending at stop {pending_at_stop} of {total}\n" + "\n".join(failures))
        assert failures and all("cannot be reached" in line or "did not answer" in line for line in failures), err
        reported = re.search(r"(\d+) failed attempts", err)
        assert reported and int(reported.group(1)) == len(failures)  # one line per failed attempt, no more
        _assert_same(sync_reference, lrs)
    finally:
        lrs.stop()

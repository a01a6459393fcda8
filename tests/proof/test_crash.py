"""Crash anywhere: SIGKILL a sync cycle (and a chat import) at seeded points, rerun, compare the LRS.

Each point kills one real ``lms-bridge`` process (SIGKILL, no cleanup) at a moment picked from a
seeded random number in one stratum of that phase, so the 20 sync points spread over the whole run:

- ``pull``: from the fake Moodle, 0-15 ms after it received call number k of the sync;
- ``sync-write`` / ``jp-write``: inside the process, just before or just after the N-th COMMIT, or
  before the N-th INSERT/UPDATE of the outbox (mid-transaction) (``tests/proof/crashing_cli.py``);
- ``flush``: from an LRS proxy, at POST number k: before Ralph sees it, after Ralph stored it but
  before the answer reaches the client, or right after the answer (while the rows are being marked).

Then the whole cycle runs again to completion, and the LRS must hold exactly the statements (ids
and contents) of one uninterrupted run: none missing, none twice, none different; every outbox row sent.
"""

from __future__ import annotations

import random
import threading

import pytest

from bench.imports import roster_csv, whatsapp_export
from tests.fixtures.lrs import FaultyLRS
from tests.proof.conftest import CRASHING_CLI, SYNC_CHAIN, Reference, counted_chain
from tests.proof.support import (
    CAPTURED,
    content,
    diff_summary,
    kill,
    make_deployment,
    start_ralph,
    workdir,
)

pytestmark = pytest.mark.proof

SYNC_POINTS = (
    [("pull", i, 6) for i in range(6)]
    + [("sync-write", i, 5) for i in range(5)]
    + [("jp-write", i, 3) for i in range(3)]
    + [("flush", i, 6) for i in range(6)]
)
IMPORT_POINTS = [("import-write", i, 3) for i in range(3)] + [("jp-write", 0, 1)] + [("flush", i, 2) for i in range(2)]


class _Current:
    process = None


def _stratum(rng: random.Random, index: int, strata: int, total: int) -> int:
    """A number in stratum ``index`` of ``strata`` equal slices of 1..total."""
    low = 1 + total * index // strata
    high = max(low, total * (index + 1) // strata)
    return rng.randint(low, high)


def _db_kill(rng: random.Random, index: int, strata: int, commits: int, writes: int) -> dict[str, str]:
    """A PROOF_KILL spec: alternately before a commit, after a commit, mid-transaction."""
    style = index % 3
    if style == 2 and writes:
        return {"PROOF_KILL": f"write:{_stratum(rng, index, strata, writes)}"}
    moment = "before" if style == 0 else "after"
    return {"PROOF_KILL": f"commit:{_stratum(rng, index, strata, commits)}:{moment}"}


def _run_chain(deployment, chain, current: _Current, kill_in: str | None, kill_env: dict[str, str]) -> str | None:
    """Run ``chain`` until a command is killed; returns the killed command's name (or None)."""
    for command in chain:
        env = kill_env if command[0] == kill_in else {}
        process = deployment.popen(*command, module=CRASHING_CLI, env=env)
        current.process = process
        out, err = process.communicate(timeout=300)
        CAPTURED.output(f"crash run {' '.join(command)}", out + err)
        if process.returncode == -9:
            return command[0]
        assert process.returncode == 0, f"{' '.join(command)} failed ({process.returncode}):\n{err}"
    return None


def _crash_and_recover(*, name, chain, reference: Reference, phase, index, strata, moodle=None, setup=()):  # type: ignore[no-untyped-def]
    rng = random.Random(f"issue-9:{name}:{phase}:{index}")
    lrs = start_ralph()
    try:
        with FaultyLRS(lrs.url) as proxy:
            deployment = make_deployment(
                f"crash-{name}-{phase}-{index}", lrs_url=proxy.url, moodle_url=moodle.url if moodle else None
            )
            for command in setup:
                deployment.run(*command)
            current = _Current()
            kill_in, kill_env, where = None, {}, ""
            if phase == "pull":
                target = moodle.call_number + _stratum(rng, index, strata, reference.calls)
                delay = rng.uniform(0, 0.015)

                def on_call(number: int, function: str) -> None:
                    if number == target:
                        threading.Timer(delay, kill, [current.process]).start()

                moodle.on_call = on_call
                where = f"Moodle call {target - moodle.call_number} + {delay * 1000:.0f} ms"
            elif phase == "flush":
                target_post = _stratum(rng, index, strata, reference.posts)
                moment = ("before", "stored", "answered")[index % 3]
                proxy.on_post = lambda n: (moment, lambda: kill(current.process)) if n == target_post else "ok"
                where = f"LRS POST {target_post}, {moment}"
            else:
                kill_in = {"sync-write": "sync", "jp-write": "jp", "import-write": "import"}[phase]
                kill_env = _db_kill(rng, index, strata, reference.commits[kill_in], reference.writes[kill_in])
                where = f"{kill_in} {kill_env['PROOF_KILL']}"
            killed = _run_chain(deployment, chain, current, kill_in, kill_env)
            moodle and setattr(moodle, "on_call", None)
            proxy.on_post = None
            assert killed is not None, f"the kill point ({where}) was never reached"
            partial = deployment.outbox_count()
            sent = deployment.query("select count(*) from outbox where status = 'sent'")
            print(f"killed {killed} at {where}: {partial} rows queued, {sent[0][0] if sent else 0} sent")
            assert _run_chain(deployment, chain, current, None, {}) is None  # rerun to completion
            statuses = dict(deployment.query("select status, count(*) from outbox group by status"))
        got = content(lrs)
    finally:
        lrs.stop()
    assert statuses == {"sent": len(reference.content)}, f"outbox after recovery: {statuses} ({where})"
    assert got == reference.content, (
        f"killed in {killed} at {where} ({partial} rows queued then): {diff_summary(reference.content, got)}"
    )


@pytest.mark.parametrize(
    ("phase", "index", "strata"), SYNC_POINTS, ids=[f"{phase}-{index}" for phase, index, _ in SYNC_POINTS]
)
def test_sigkill_anywhere_in_a_sync_cycle_then_rerun(phase, index, strata, moodle, sync_reference):
    _crash_and_recover(
        name="sync", chain=SYNC_CHAIN, reference=sync_reference, phase=phase, index=index, strata=strata, moodle=moodle
    )


# --- a chat export import ----------------------------------------------------------------------------

# The 600-message export spans 5 to 7 January (dates that read both ways in time order): the order is given.
IMPORT_CHAIN = (
    ("import", "chat.txt", "--community", "cop-proof", "--day-first"),
    ("jp", "compute"),
    ("outbox", "flush"),
)


@pytest.fixture(scope="session")
def chat_files():
    folder = workdir("chat")
    chat, roster = folder / "chat.txt", folder / "roster.csv"
    chat.write_text(whatsapp_export(600, seed=9), encoding="utf-8")
    roster.write_text(roster_csv(), encoding="utf-8")
    return chat, roster


def _import_chain(chat_files):  # type: ignore[no-untyped-def]
    chat, _ = chat_files
    return tuple(tuple(str(chat) if part == "chat.txt" else part for part in command) for command in IMPORT_CHAIN)


@pytest.fixture(scope="session")
def import_reference(chat_files) -> Reference:
    chat, roster = chat_files
    lrs = start_ralph()
    try:
        with FaultyLRS(lrs.url) as proxy:
            deployment = make_deployment("reference-import", lrs_url=proxy.url)
            deployment.run("people", "import", str(roster))
            reference = Reference(content={})
            counted_chain(deployment, _import_chain(chat_files), reference)
            reference.posts = proxy.posts
        reference.content = content(lrs)
    finally:
        lrs.stop()
    assert len(reference.content) > 500
    return reference


@pytest.mark.parametrize(
    ("phase", "index", "strata"), IMPORT_POINTS, ids=[f"{phase}-{index}" for phase, index, _ in IMPORT_POINTS]
)
def test_sigkill_anywhere_in_a_chat_import_then_rerun(phase, index, strata, chat_files, import_reference):
    _crash_and_recover(
        name="import",
        chain=_import_chain(chat_files),
        reference=import_reference,
        phase=phase,
        index=index,
        strata=strata,
        setup=[("people", "import", str(chat_files[1]))],
    )

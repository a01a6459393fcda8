"""Crash a live pull: SIGKILL ``lms-bridge sync`` of a Telegram bot source with several pages at seeded
points, rerun, compare the outbox with one uninterrupted pull.

Telegram drops an update once ``getUpdates`` is called with an offset past it, so besides "nothing
lost, nothing twice" the fake checks, at every request, that the offset it is sent does not pass the
cursor committed in the state database: no update is confirmed before its page is committed.

Points (as in test_crash.py): ``pull``, 0-15 ms after the fake received request k; ``sync-write``,
inside the process just before or after the N-th COMMIT, or before the N-th outbox INSERT.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
from collections.abc import Callable

import pytest

from fakes.telegram_bot import FakeTelegramBot
from tests.connectors.test_telegram_bot import TOKEN as TELEGRAM_TOKEN
from tests.fixtures.deployment import Deployment
from tests.proof.conftest import CRASHING_CLI, Reference, counted_chain
from tests.proof.support import CAPTURED, kill
from tests.proof.test_crash import _db_kill, _stratum
from tests.proof.test_live_faults import telegram_deployment, telegram_fake

pytestmark = pytest.mark.proof

MESSAGES, LIMIT = 20, 4  # 5 pages, then the empty poll that ends the pull
POINTS = [("pull", 0, 2), ("pull", 1, 2), ("sync-write", 0, 3), ("sync-write", 1, 3), ("sync-write", 2, 3)]


class CheckedBot(FakeTelegramBot):
    """The fake bot, checking each ``getUpdates`` offset against the committed cursor; may kill at request k."""

    def __init__(self) -> None:
        super().__init__(TELEGRAM_TOKEN, max_poll_seconds=0.2)
        self.deployment: Deployment | None = None
        self.early: list[str] = []  # offsets sent before their page was committed
        self.requests = 0
        self.on_request: Callable[[int], None] | None = None

    def handle(self, handler, token, method, params):  # type: ignore[no-untyped-def]
        if method == "getUpdates":
            self.requests += 1
            offset = params.get("offset")
            if offset is not None and self.deployment is not None:
                rows = self.deployment.query("select position from cursors where stream = 'updates'")
                committed = json.loads(rows[0][0])["offset"] if rows else None
                if committed is None or int(offset) > committed:
                    self.early.append(f"offset {offset} sent with the cursor at {committed}")
            if self.on_request is not None:
                self.on_request(self.requests)
        super().handle(handler, token, method, params)


def _migrated(deployment: Deployment) -> Deployment:
    """The state database created first, as in a deployment that ran before: the kills land in the pull.

    (A kill inside the very first schema migration is another matter: see the report of issue 9.)
    """
    deployment.run("outbox", "status")
    assert deployment.db.exists()
    return deployment


class _Current:
    process: subprocess.Popen[str] | None = None


@pytest.fixture(scope="module")
def telegram_reference() -> tuple[Reference, dict[str, str]]:
    """Counts (commits, writes, requests) and the outbox of one uninterrupted pull."""
    fake = telegram_fake(MESSAGES, CheckedBot())
    try:
        deployment = _migrated(telegram_deployment("live-crash-reference", fake, limit=LIMIT))
        fake.deployment = deployment
        reference = Reference(content={})
        counted_chain(deployment, (("sync",),), reference)
        reference.calls = fake.requests
        assert fake.early == [] and fake.pending == []
    finally:
        fake.stop()
    outbox = deployment.outbox()
    assert len(outbox) == MESSAGES and reference.calls == MESSAGES // LIMIT + 1
    return reference, outbox


@pytest.mark.parametrize(("phase", "index", "strata"), POINTS, ids=[f"{p}-{i}" for p, i, _ in POINTS])
def test_sigkill_in_a_telegram_bot_pull_then_rerun(phase, index, strata, telegram_reference):
    reference, outbox = telegram_reference
    rng = random.Random(f"issue-9:telegram-bot:{phase}:{index}")
    fake = telegram_fake(MESSAGES, CheckedBot())
    current = _Current()
    try:
        deployment = _migrated(telegram_deployment(f"live-crash-{phase}-{index}", fake, limit=LIMIT))
        fake.deployment = deployment
        env: dict[str, str] = {}
        if phase == "pull":
            target = _stratum(rng, index, strata, reference.calls - 1)  # a page's request, not the last poll
            delay = rng.uniform(0, 0.015)

            def on_request(number: int) -> None:
                if number == target:
                    threading.Timer(delay, kill, [current.process]).start()

            fake.on_request = on_request
            where = f"getUpdates request {target} + {delay * 1000:.0f} ms"
        else:
            env = _db_kill(rng, index, strata, reference.commits["sync"], reference.writes["sync"])
            where = env["PROOF_KILL"]
        current.process = deployment.popen("sync", module=CRASHING_CLI, env=env)
        out, err = current.process.communicate(timeout=120)
        CAPTURED.output("crash run sync (telegram bot)", out + err)
        assert current.process.returncode == -9, f"the kill point ({where}) was never reached:\n{err}"
        fake.on_request = None
        partial = deployment.outbox_count()
        print(f"killed at {where}: {partial} rows queued, {len(fake.pending)} updates not confirmed")
        deployment.run("sync")
        assert fake.early == [], f"killed at {where}: {fake.early}"
        assert fake.pending == []
    finally:
        fake.stop()
    got = deployment.outbox()
    assert got == outbox, (
        f"killed at {where} ({partial} rows queued then): {len(outbox.keys() - got.keys())} "
        f"missing, {len(got.keys() - outbox.keys())} extra"
    )

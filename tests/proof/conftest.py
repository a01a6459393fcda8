"""Session fixtures of the proof suite: one fake Moodle, and the uninterrupted reference runs."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.fixtures.lrs import FaultyLRS
from tests.proof.support import (
    ADMIN_TOKEN,
    CAPTURED,
    SPARE_RALPH,
    ProofMoodle,
    base_dir,
    content,
    make_deployment,
    start_ralph,
    workdir,
)

#: The CLI commands of one sync cycle, in order.
SYNC_CHAIN = (("sync",), ("jp", "compute"), ("outbox", "flush"))
CRASHING_CLI = "tests.proof.crashing_cli"


@dataclass
class Reference:
    """What one uninterrupted run put in a fresh Ralph, and how many steps each command took."""

    content: dict[str, dict]
    calls: int = 0  # Moodle calls of the sync
    posts: int = 0  # LRS POSTs of the flush
    commits: dict[str, int] = field(default_factory=dict)  # per command
    writes: dict[str, int] = field(default_factory=dict)  # outbox INSERT/UPDATE statements per command
    seconds: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="session", autouse=True)
def _session_cleanup() -> Iterator[None]:
    """Stop the spare Ralph; remove the suite's folders (kept with PROOF_KEEP=1, to look at a failure)."""
    yield
    SPARE_RALPH.close()
    if not os.environ.get("PROOF_KEEP") and base_dir() is not None:
        shutil.rmtree(base_dir(), ignore_errors=True)


@pytest.fixture(scope="session")
def moodle() -> Iterator[ProofMoodle]:
    """The small fake Moodle site, shared (tests undo their hooks and faults)."""
    with ProofMoodle(preset="small", seed=1, token=ADMIN_TOKEN) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _moodle_knobs_reset(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "moodle" in request.fixturenames:
        request.getfixturevalue("moodle").reset_knobs()


def counted_chain(deployment, chain, reference: Reference, *, before=None) -> None:  # type: ignore[no-untyped-def]
    """Run ``chain`` to completion through the crashing CLI in counting mode."""
    for command in chain:
        name = command[0]
        counts = workdir("counts") / "counts.json"
        started = time.perf_counter()
        deployment.run(*command, module=CRASHING_CLI, env={"PROOF_COUNT": str(counts)})
        reference.seconds[name] = time.perf_counter() - started
        data = json.loads(counts.read_text())
        reference.commits[name], reference.writes[name] = data["commits"], data["writes"]


@pytest.fixture(scope="session")
def sync_reference(moodle: ProofMoodle) -> Iterator[Reference]:
    """sync + jp compute + outbox flush of the small site, uninterrupted, into a fresh Ralph."""
    lrs = start_ralph()
    try:
        with FaultyLRS(lrs.url) as proxy:
            deployment = make_deployment("reference-sync", lrs_url=proxy.url, moodle_url=moodle.url)
            reference = Reference(content={})
            first_call = moodle.call_number
            counted_chain(deployment, SYNC_CHAIN[:1], reference)
            reference.calls = moodle.call_number - first_call
            counted_chain(deployment, SYNC_CHAIN[1:], reference)
            reference.posts = proxy.posts
        reference.content = content(lrs)
        CAPTURED.output("reference outbox", json.dumps(deployment.outbox()))
        yield reference
    finally:
        lrs.stop()

"""Site locks: real processes contending on SQLite and PostgreSQL, killed holders, threads with their own engines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.store.locks import LockBusy, site_lock, sync_lock_name
from lms_bridge.store.models import Lock, utcnow
from tests.fixtures.deployment import ROOT

HOLDER = textwrap.dedent("""\
    import sys
    from lms_bridge import store
    from lms_bridge.store.locks import site_lock
    engine = store.make_engine(sys.argv[1])
    with site_lock(engine, sys.argv[2], wait=True, ttl=float(sys.argv[3])) as held:
        print("held", held.owner, flush=True)
        sys.stdin.readline()  # hold until the test closes stdin (or kills us)
    print("released", flush=True)
""")


def _hold(state_url: str, name: str, ttl: float = 2.0) -> tuple[subprocess.Popen[str], str]:
    """Start a process that takes the lock and holds it; return it and its owner string."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, state_url, name, str(ttl)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    line = process.stdout.readline()
    assert line.startswith("held "), process.stderr.read()
    return process, line.split()[1]


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGKILL the holder (by its pid) and reap it."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None and not stream.closed:
            stream.close()


def test_a_second_process_is_refused_then_gets_the_lock_once_released(state_url):
    engine = store.open_engine(state_url)
    name = sync_lock_name("demo")
    holder, owner = _hold(state_url, name)
    try:
        with pytest.raises(LockBusy) as busy, site_lock(engine, name, wait=False):
            pass
        assert busy.value.holder == owner and f"sync:demo is held by another run ({owner})" in str(busy.value)
        assert owner.split(":")[1] == str(holder.pid)
        # Waiting: the holder lets go half-way through our wait.
        threading.Timer(0.5, holder.stdin.close).start()
        started = time.monotonic()
        with site_lock(engine, name, wait=True, timeout=20, poll=0.1) as held:
            assert not held.lost
        assert 0.4 < time.monotonic() - started < 15
    finally:
        _stop(holder)
    # Released: nothing is left behind.
    with Session(engine) as session:
        assert session.scalars(select(Lock)).all() == []


def test_waiting_gives_up_after_the_timeout(state_url):
    engine = store.open_engine(state_url)
    holder, owner = _hold(state_url, "sync:slow")
    try:
        started = time.monotonic()
        with pytest.raises(LockBusy), site_lock(engine, "sync:slow", wait=True, timeout=1.0, poll=0.1):
            pass
        assert 0.9 < time.monotonic() - started < 5
        # Other names are independent.
        with site_lock(engine, "sync:other", wait=False):
            pass
    finally:
        _stop(holder)


def test_sqlite_lock_of_a_killed_local_run_is_taken_over_at_once(tmp_path):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = store.open_engine(state_url)
    holder, owner = _hold(state_url, "sync:demo", ttl=60.0)
    with pytest.raises(LockBusy):  # alive: busy
        with site_lock(engine, "sync:demo", wait=False):
            pass
    _stop(holder)
    # Its row says "mine for another minute", but its pid is gone from this host: "kill it, run it again" works.
    with site_lock(engine, "sync:demo", wait=False) as held:
        with Session(engine) as session:
            assert session.get(Lock, "sync:demo").owner == held.owner != owner


def test_sqlite_lock_of_a_run_elsewhere_expires_after_its_ttl(tmp_path):
    engine = store.open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    # A run on another host (its pid cannot be checked from here) was killed 1 s into a 3 s ttl.
    with Session(engine) as session, session.begin():
        session.add(
            Lock(name="sync:demo", owner="other-host:4242:feedbeef", expires_at=utcnow() + timedelta(seconds=2))
        )
    started = time.monotonic()
    with pytest.raises(LockBusy) as busy, site_lock(engine, "sync:demo", wait=False):
        pass
    assert busy.value.holder == "other-host:4242:feedbeef" and busy.value.expires_at is not None
    with site_lock(engine, "sync:demo", wait=True, timeout=15, poll=0.1):
        waited = time.monotonic() - started
    assert 1.5 < waited < 5.0


def test_a_live_local_holder_is_never_taken_over(tmp_path):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = store.open_engine(state_url)
    holder, owner = _hold(state_url, "sync:demo", ttl=1.0)
    try:
        time.sleep(2.5)  # past its first expiry: refreshed, and alive
        with pytest.raises(LockBusy), site_lock(engine, "sync:demo", wait=False):
            pass
    finally:
        _stop(holder)


def test_postgresql_lock_of_a_killed_run_is_free_at_once(pg_database_url):
    engine = store.open_engine(pg_database_url)
    holder, owner = _hold(pg_database_url, "sync:demo", ttl=60.0)
    with pytest.raises(LockBusy) as busy, site_lock(engine, "sync:demo", wait=False):
        pass
    assert busy.value.holder == owner  # found through pg_locks and the connection's application_name
    _stop(holder)
    killed_at = time.monotonic()
    # No expiry to wait for: the dead connection took its session lock with it.
    with site_lock(engine, "sync:demo", wait=True, timeout=10, poll=0.05):
        assert time.monotonic() - killed_at < 2.0


def test_sqlite_lock_is_refreshed_while_held(tmp_path):
    engine = store.open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    other = store.make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    with site_lock(engine, "sync:demo", wait=False, ttl=0.6) as held:
        time.sleep(1.5)  # well past the first expiry
        with pytest.raises(LockBusy), site_lock(other, "sync:demo", wait=False):
            pass
        assert not held.lost


def test_a_lock_taken_over_after_a_stall_is_reported_lost(tmp_path):
    engine = store.open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    with site_lock(engine, "sync:demo", wait=False, ttl=0.6) as held:
        # Another run took the row (as it would after this process stalled past the expiry).
        with Session(engine) as session, session.begin():
            session.get(Lock, "sync:demo").owner = "elsewhere:1:x"
        deadline = time.monotonic() + 5
        while not held.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held.lost
    with Session(engine) as session:  # release leaves the other owner's row alone
        assert session.get(Lock, "sync:demo").owner == "elsewhere:1:x"


def test_threads_with_their_own_engines_never_hold_the_lock_together(state_url):
    store.open_engine(state_url)
    inside = 0
    most = 0
    entries = 0
    guard = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        nonlocal inside, most, entries
        engine = store.make_engine(state_url)
        try:
            for _ in range(5):
                with site_lock(engine, "sync:shared", wait=True, timeout=60, poll=0.01):
                    with guard:
                        inside += 1
                        entries += 1
                        most = max(most, inside)
                    time.sleep(0.02)
                    with guard:
                        inside -= 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert entries == 20 and most == 1

"""Distributed syncs (issue 10): real Redis, real PostgreSQL, real `lms-bridge worker` processes, real Ralph.

Nothing is mocked. The fake Moodle sites are real HTTP servers; a subclass counts the requests
each one is working on at once, to check the per-site limit across workers.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from lms_bridge.demo.moodle import FakeMoodle
from lms_bridge.runtime import distributed
from lms_bridge.store import open_engine
from lms_bridge.store.locks import LockBusy, site_lock, sync_lock_name
from tests.fixtures.deployment import ROOT, Deployment
from tests.fixtures.lrs import lrs_statements
from tests.fixtures.moodle import ADMIN_TOKEN

SITES = 6
MAX_IN_FLIGHT = 2
#: Seconds before Redis hands an unacknowledged task (its worker was killed) to another worker. It must
#: exceed the longest task (~3 s here), or a task still running is handed out a second time.
VISIBILITY_TIMEOUT = 10
STREAMS = ("enrolled_users", "course_completions", "activity_completions", "forum_posts")
#: The task lines a worker logs: around the run under its locks, or instead of it for a task delivered again.
STATUSES = ("started", "finished", "already done")


class CountingMoodle(FakeMoodle):
    """A fake Moodle that records when it worked on each request, and for which client port."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.spans: list[tuple[float, float, int]] = []
        self._gauge = threading.Lock()

    def _serve(self, handler: object, pairs: list[tuple[str, str]]) -> None:
        start = time.time()
        try:
            super()._serve(handler, pairs)  # type: ignore[arg-type]
        finally:
            with self._gauge:
                self.spans.append((start, time.time(), handler.client_address[1]))  # type: ignore[attr-defined]

    def peak(self, dead_ports: set[int], died_at: float) -> int:
        """The most requests of live clients worked on at once.

        A request of a client that died (its port in ``dead_ports``) counts until ``died_at`` only: the
        server may go on working on it, but the client's request slot went with its connections. A request
        that started after the death is a live client's, even on a dead client's port: Linux reuses loopback
        ports at once (``tcp_tw_reuse``), and cutting such a span at ``died_at`` would count it forever.
        """
        with self._gauge:
            spans = [
                (start, min(end, died_at) if port in dead_ports and start < died_at else end)
                for start, end, port in self.spans
            ]
        edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
        now = most = 0
        for _, step in edges:  # an end sorts before a start at the same instant
            now += step
            most = max(most, now)
        return most


def _tcp_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process ``pid`` has open (from /proc: no psutil here)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def moodle_sites() -> Iterator[list[CountingMoodle]]:
    """Six small fake Moodle sites; per-user calls take a little time, so tasks overlap and can be killed."""
    with ExitStack() as stack:
        sites = []
        for seed in range(SITES):
            fake = CountingMoodle(preset="small", seed=seed + 1, token=ADMIN_TOKEN)
            fake.set_latency("core_completion_get_course_completion_status", 0.01)
            fake.set_latency("core_completion_get_activities_completion_status", 0.01)
            fake.set_latency("mod_forum_get_discussion_posts", 0.01)
            sites.append(stack.enter_context(fake))
        yield sites


def _sources(sites: list[CountingMoodle]) -> str:
    return "".join(
        f'\n[[sources]]\nid = "site{index}"\ntype = "moodle"\nurl = "{fake.url}"\ntoken_env = "MOODLE_TOKEN_S{index}"\n'
        f"max_in_flight = {MAX_IN_FLIGHT}\nbackoff_base = 0.05\n"
        for index, fake in enumerate(sites)
    )


class Worker:
    """An `lms-bridge worker` subprocess in a process group of its own, logging JSON lines to a file."""

    def __init__(self, deployment: Deployment, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lms_bridge.cli",
                "--config",
                str(deployment.config),
                "--log-format",
                "json",
                "worker",
                "--pool",
                "solo",
            ],
            env=deployment.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    def events(self) -> list[dict]:
        """The task lines logged so far: started, finished, or already done (a task delivered again)."""
        found = []
        for line in self.log_path.read_text().splitlines():
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("status") in STATUSES and "stream" in data:
                data["task"] = data["message"].split()[1].rstrip(":")
                data["pid"] = self.process.pid
                found.append(data)
        return found

    def kill(self) -> tuple[float, set[int]]:
        """SIGKILL the worker's whole process group; return when it happened (epoch seconds) and its TCP ports.

        It is stopped (SIGSTOP) first, so the ports read are those of its connections when it died.
        """
        os.killpg(self.process.pid, signal.SIGSTOP)
        ports = _tcp_ports(self.process.pid)
        os.killpg(self.process.pid, signal.SIGKILL)
        killed = time.time()
        self.process.wait(timeout=10)
        return killed, ports

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # Celery's warm shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


@pytest.mark.slow
def test_workers_sync_every_site_stream_once_survive_a_kill_and_flush_each_statement_once(
    pg_database_url: str,
    broker: tuple[str, str | None],
    fresh_ralph,
    moodle_sites: list[CountingMoodle],
    make_deployment: Callable[..., Deployment],
    tmp_path: Path,
) -> None:
    deployment = make_deployment(
        pg_database_url,
        fresh_ralph.url,
        fresh_ralph.password,
        extra_toml=_sources(moodle_sites),
        lrs_options="batch_size = 25",
    )
    deployment.env |= {f"MOODLE_TOKEN_S{i}": ADMIN_TOKEN for i in range(SITES)}
    broker_url, result_backend = broker
    deployment.env |= {distributed.BROKER_ENV: broker_url, distributed.VISIBILITY_ENV: str(VISIBILITY_TIMEOUT)}
    if result_backend is not None:
        deployment.env[distributed.RESULT_BACKEND_ENV] = result_backend
    deployment.run("db", "upgrade", check=True)
    workers: list[Worker] = []
    try:
        workers = [Worker(deployment, tmp_path / f"worker-{name}.log") for name in "abc"]
        enqueue = deployment.run("sync", "--all", "--distributed", check=True)
        assert enqueue.stdout.count("site") >= SITES * len(STREAMS)

        # Kill worker a in the middle of a task: after it logged a start and before its finish.
        victim = workers[0]

        def victim_busy() -> bool:
            events = victim.events()
            return bool(
                {e["task"] for e in events if e["status"] == "started"}
                - {e["task"] for e in events if e["status"] == "finished"}
            )

        _wait_until(victim_busy, 60, "worker a to be running a task")
        killed_at, victim_ports = victim.kill()
        victim_events = victim.events()
        running = {e["task"] for e in victim_events if e["status"] == "started"} - {
            e["task"] for e in victim_events if e["status"] == "finished"
        }
        assert len(running) == 1, f"worker a was not mid-task when killed: {victim_events}"
        [killed_task] = running

        # Every site-stream ends with exactly one successful run, the killed one included. Brokers deliver a
        # task again when it was not acknowledged (its worker was killed, even after its run ended; Redis also
        # when it outruns the visibility timeout, as tasks here do under load): that copy waits for the
        # stream's lock, then finds the run of its task id done and runs nothing.
        engine = open_engine(pg_database_url)

        def ok_runs() -> dict[tuple[str, str], int]:
            with engine.connect() as connection:
                rows = connection.execute(text("SELECT site_id, counts FROM runs WHERE status = 'ok'")).all()
            found: dict[tuple[str, str], int] = {}
            for site_id, counts in rows:
                for stream in set(json.loads(counts)) & set(STREAMS):
                    found[(site_id, stream)] = found.get((site_id, stream), 0) + 1
            return found

        expected = {(f"site{i}", stream) for i in range(SITES) for stream in STREAMS}
        _wait_until(lambda: set(ok_runs()) == expected, 120, "every site-stream to be synced")
        time.sleep(1)  # a duplicate run would show up now
        assert ok_runs() == dict.fromkeys(expected, 1)
        # The killed task's run (if it had started one) reads abandoned, not running for ever.
        with engine.connect() as connection:
            statuses = dict(connection.execute(text("SELECT status, count(*) FROM runs GROUP BY status")).all())
        assert set(statuses) <= {"ok", "abandoned"} and statuses.get("abandoned", 0) <= 1, statuses

        # The killed task was completed by another worker (or, killed after its run was recorded, found done).
        survivors = [event for worker in workers[1:] for event in worker.events()]
        assert any(e["task"] == killed_task and e["status"] in ("finished", "already done") for e in survivors)
        assert {e["pid"] for e in survivors if e["status"] == "finished"} == {w.process.pid for w in workers[1:]}

        # No site-stream was ever pulled by two tasks at once (the killed one held it until it died).
        intervals: dict[tuple[str, str], list[tuple[float, float]]] = {}
        events = victim_events + survivors
        for start in (e for e in events if e["status"] == "started"):
            ends = [
                _epoch(e["time"])
                for e in events
                if e["task"] == start["task"] and e["status"] == "finished" and e["pid"] == start["pid"]
            ]
            end = ends[0] if ends else killed_at
            intervals.setdefault((start["site"], start["stream"]), []).append((_epoch(start["time"]), end))
        assert set(intervals) == expected
        finished = Counter(e["task"] for e in events if e["status"] == "finished")
        assert len(finished) >= len(expected) - 1 and set(finished.values()) == {1}, finished
        for key, spans in intervals.items():
            spans.sort()
            for (_, end), (begin, _) in zip(spans, spans[1:], strict=False):
                assert begin >= end, f"{key} was synced twice at once: {spans}"
        # Streams of one site did run side by side (on RabbitMQ, which hands out a site's per-user tasks in the
        # order they arrive, together; on Redis their priorities spread 3 workers over 6 sites first, so a site's
        # streams seldom overlap there), yet each site never saw more than its limit.
        per_site: dict[str, list[tuple[float, float]]] = {}
        for (site, _), spans in intervals.items():
            per_site.setdefault(site, []).extend(spans)
        overlapped = any(
            begin < end
            for spans in per_site.values()
            for (_, end), (begin, _) in zip(sorted(spans), sorted(spans)[1:], strict=False)
        )
        assert overlapped or broker_url.startswith("redis")
        peaks = [fake.peak(victim_ports, killed_at) for fake in moodle_sites]
        assert all(peak <= MAX_IN_FLIGHT for peak in peaks), peaks

        # Two workers flush at once; each row is posted by exactly one of them.
        with engine.connect() as connection:
            queued = connection.scalar(text("SELECT count(*) FROM outbox"))
        assert queued > 200
        # Each task stops after half the rows (and one), so both send some even when one starts late on a loaded
        # machine; whether they overlap or not, no row may be posted twice.
        half = str(queued // 2 + 1)
        flushed = deployment.run(
            "outbox", "flush", "--distributed", "--tasks", "2", "--limit", half, "--wait", check=True, timeout=300
        )
        sent = [int(line.split(" sent ")[1].split()[0]) for line in flushed.stdout.splitlines() if " sent " in line]
        assert len(sent) == 2 and all(sent) and sum(sent) == queued, flushed.stdout
        with engine.connect() as connection:
            statuses = dict(connection.execute(text("SELECT status, count(*) FROM outbox GROUP BY status")).all())
            ids = {row[0] for row in connection.execute(text("SELECT statement_id FROM outbox"))}
        assert statuses == {"sent": queued}
        stored = [statement["id"] for statement in lrs_statements(fresh_ralph)]
        assert len(stored) == len(set(stored)) == queued and set(stored) == ids
        engine.dispose()
    finally:
        for worker in workers:
            worker.stop()


def test_stream_locks_exclude_a_plain_sync_and_the_same_stream_not_other_streams(pg_database_url: str) -> None:
    engine = open_engine(pg_database_url)
    try:
        with distributed.stream_lock(engine, "kemenpan", "forum_posts"):
            with distributed.stream_lock(engine, "kemenpan", "course_completions"):
                pass  # another stream of the same site: fine
            with pytest.raises(LockBusy), distributed.stream_lock(engine, "kemenpan", "forum_posts"):
                pass
            with pytest.raises(LockBusy), site_lock(engine, sync_lock_name("kemenpan"), wait=False):
                pass  # a plain sync of the site waits for the distributed tasks
        with site_lock(engine, sync_lock_name("kemenpan"), wait=False):
            with pytest.raises(LockBusy), distributed.stream_lock(engine, "kemenpan", "forum_posts"):
                pass
        with distributed.stream_lock(engine, "kemenpan", "forum_posts"):  # everything was released
            pass
    finally:
        engine.dispose()


def test_call_slots_hold_the_site_limit_across_engines(pg_database_url: str) -> None:
    """Two engines stand for two worker processes: together they never hold more than the limit."""
    engines = [open_engine(pg_database_url), open_engine(pg_database_url)]
    gauge = threading.Lock()
    state = {"now": 0, "peak": 0}

    def call(index: int) -> int:
        with distributed.request_slot(engines[index % 2], "moodle", "kemenpan", 3) as slot:
            with gauge:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            time.sleep(0.05)
            with gauge:
                state["now"] -= 1
        return slot

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            slots = list(pool.map(call, range(24)))
        assert state["peak"] == 3 and set(slots) == {0, 1, 2}
        with distributed.request_slot(engines[0], "moodle", "other-site", 1):  # another site has slots of its own
            pass
    finally:
        for engine in engines:
            engine.dispose()


def test_distributed_runs_refuse_sqlite_and_a_missing_broker(
    make_deployment: Callable[..., Deployment], tmp_path: Path, pg_database_url: str
) -> None:
    deployment = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", "http://127.0.0.1:9/xAPI/", "pw-x")
    deployment.env[distributed.BROKER_ENV] = "redis://127.0.0.1:9/0"
    result = deployment.run("worker")
    assert result.returncode == 2
    assert "need the state store on PostgreSQL" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    deployment = make_deployment(pg_database_url, "http://127.0.0.1:9/xAPI/", "pw-x")
    result = deployment.run("sync", "--all", "--distributed")
    assert result.returncode == 2 and f"set {distributed.BROKER_ENV}" in result.stderr
    assert "Traceback" not in result.stderr


def test_wait_is_refused_before_enqueuing_without_a_backend_that_stores_results(
    make_deployment: Callable[..., Deployment], pg_database_url: str
) -> None:
    """RabbitMQ with no result backend, or with ``rpc://`` (which hands results only to the sender, while workers
    send a site's later tasks): ``--wait`` is refused in one sentence, and nothing reaches the queue."""
    source = '[[sources]]\nid = "demo"\ntype = "moodle"\nurl = "http://127.0.0.1:9"\ntoken_env = "MOODLE_TOKEN_DEMO"\n'
    deployment = make_deployment(pg_database_url, "http://127.0.0.1:9/xAPI/", "pw-x", extra_toml=source)
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    deployment.run("db", "upgrade", check=True)
    # An AMQP port nobody listens on: anything sent would fail loudly, so a clean refusal proves nothing was sent.
    deployment.env[distributed.BROKER_ENV] = "amqp://guest:guest@127.0.0.1:9//"
    refusals = ((None, "--wait needs a result backend"), ("rpc://", "returns them only to the process that sent"))
    for backend, needle in refusals:
        if backend is not None:
            deployment.env[distributed.RESULT_BACKEND_ENV] = backend
        for command in (("sync", "--all", "--distributed", "--wait"), ("outbox", "flush", "--distributed", "--wait")):
            result = deployment.run(*command)
            assert result.returncode == 2, (command, result.stderr)
            assert needle in result.stderr and "Traceback" not in result.stderr, result.stderr
            assert len(result.stderr.strip().splitlines()) == 1


class LockKillingMoodle(FakeMoodle):
    """A fake Moodle that, on the first participants call, terminates the lock connection of the task that
    asked (``pg_terminate_backend`` from another session, as a network cut or a DBA would): so the lock is
    lost mid-batch, deterministically, and the task must stop after that batch."""

    def __init__(self, database_url: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.database_url = database_url
        self.terminated = 0
        self.calls_after = 0
        self._once = threading.Lock()

    def _serve(self, handler: object, pairs: list[tuple[str, str]]) -> None:
        if ("wsfunction", "core_enrol_get_enrolled_users") in pairs:
            with self._once:
                if self.terminated:
                    self.calls_after += 1
                else:
                    engine = open_engine(self.database_url)
                    with engine.begin() as connection:
                        self.terminated = len(
                            connection.execute(
                                text(
                                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE application_name LIKE 'lms-bridge lock %' AND datname = current_database()"
                                )
                            ).all()
                        )
                    engine.dispose()
        super()._serve(handler, pairs)  # type: ignore[arg-type]


def test_a_task_whose_lock_connection_drops_stops_after_its_batch(
    pg_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task runs in this process through Celery's own ``apply`` (a real task execution; no broker is
    needed to run one task eagerly, so none is contacted). Its lock connection is terminated during its
    first participants call: the batch in progress commits, the next check finds the locks gone and the
    task stops with a one-sentence error; the run is recorded failed; a rerun completes the stream."""
    from lms_bridge.config.settings import load_settings

    with LockKillingMoodle(pg_database_url, preset="small", seed=1, token=ADMIN_TOKEN) as fake:
        config = tmp_path / "lms-bridge.toml"
        config.write_text(
            f'[state]\nurl = "{pg_database_url}"\n[[sources]]\nid = "demo"\ntype = "moodle"\n'
            f'url = "{fake.url}"\ntoken_env = "MOODLE_TOKEN_DEMO"\nbackoff_base = 0.05\n',
            encoding="utf-8",
        )
        monkeypatch.setenv("MOODLE_TOKEN_DEMO", ADMIN_TOKEN)
        monkeypatch.setenv(distributed.BROKER_ENV, "redis://127.0.0.1:9/0")
        app = distributed.make_celery(load_settings(config))
        task = app.tasks[distributed.SYNC_TASK]
        first = task.apply(args=("demo", "enrolled_users")).get()
        assert fake.terminated == 1
        assert "lock sync:demo:enrolled_users was lost" in first["error"]
        engine = open_engine(pg_database_url)
        with engine.connect() as connection:
            linked = connection.scalar(text("SELECT count(*) FROM identity_links"))
            run = connection.execute(text("SELECT status, error FROM runs")).one()
        assert run.status == "failed" and "was lost" in run.error
        second = task.apply(args=("demo", "enrolled_users")).get()
        assert second["error"] is None
        with engine.connect() as connection:
            relinked = connection.scalar(text("SELECT count(*) FROM identity_links"))
        # The first task committed its first course's batch of links (they stand) and stopped there, though the
        # other courses' participants were already fetched (read ahead); the rerun links every account.
        assert 0 < first["counts"]["links"] == linked < relinked == second["counts"]["links"]
        engine.dispose()


def test_the_side_by_side_tasks_of_several_sites_are_taken_interleaved_on_redis(
    pg_database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain sends a site's per-user tasks together when its first task ends. On a real Redis, the order a
    worker takes them in (Redis BRPOP over the priority lists) is the first per-user task of every site, then
    the second of every site...: not three streams of one site while another site waits."""
    import redis

    from lms_bridge.config.settings import load_settings

    sources = "".join(
        f'[[sources]]\nid = "{site}"\ntype = "moodle"\nurl = "http://127.0.0.1:9"\ntoken_env = "MOODLE_TOKEN_DEMO"\n'
        for site in ("a", "b")
    )
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "{pg_database_url}"\n{sources}', encoding="utf-8")
    monkeypatch.setenv("MOODLE_TOKEN_DEMO", ADMIN_TOKEN)
    monkeypatch.setenv(distributed.BROKER_ENV, redis_url)
    settings = load_settings(config)
    engine = open_engine(pg_database_url)
    app = distributed.make_celery(settings)
    enqueued = distributed.enqueue_syncs(app, engine, settings)
    client = redis.Redis.from_url(redis_url)

    def take() -> dict:
        """One message as a worker takes it: BRPOP over the queue's priority lists, step 0 first."""
        keys = [distributed.QUEUE] + [f"{distributed.QUEUE}\x06\x16{step}" for step in (3, 6, 9)]
        _, raw = client.brpop(keys, timeout=5)
        return json.loads(raw)

    heads = [take(), take()]
    assert [message["headers"]["id"] for message in heads] == [i.task_id for i in enqueued if i.after is None]
    # Each head's chain holds its group of per-user tasks; a worker sends them when the head ends: site a's
    # head ends first, then site b's, so their tasks arrive as a, a, a, b, b, b.
    for message in heads:
        body = json.loads(base64.b64decode(message["body"]))
        [group_sig] = body[2]["chain"]
        for task_sig in group_sig["kwargs"]["tasks"]:
            app.signature(task_sig).apply_async()
    taken = [tuple(json.loads(base64.b64decode(take()["body"]))[0]) for _ in range(6)]
    assert taken == [
        ("a", "course_completions"),
        ("b", "course_completions"),
        ("a", "activity_completions"),
        ("b", "activity_completions"),
        ("a", "forum_posts"),
        ("b", "forum_posts"),
    ]
    client.close()
    engine.dispose()

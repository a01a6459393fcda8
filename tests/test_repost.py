"""Re-posts against an LRS that answers 409 to any id it holds (as ADL's LRS does; issue 24, item 2).

xAPI 1.0.3 lets an LRS answer a re-post of a statement it holds with 204 (Ralph) or 409
(ADL's reference LRS, equal body or not, and it then stores none of the batch). The
project re-posts after a crash between the LRS's answer and the outbox mark, and after a
client time-out while the LRS still commits; neither may make a dead letter.

:class:`RejectingRepostLRS` is a real loopback HTTP server in front of a real Ralph that
answers a POST the way ADL's LRS does (checked by running it: tests/conformance runs the
same flows against ADL's LRS itself). A :class:`FaultyLRS` in front of it kills the
flush or answers too late. Every test runs the real CLI on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from lms_bridge.demo.ralph import RalphLRS
from lms_bridge.store.models import OutboxRow
from tests.conftest import Deployment
from tests.fixtures.lrs import FaultyLRS, lrs_statements
from tests.test_outbox_flush import _assert_lrs_holds_exactly, _queue, _rows
from xapi.statements import BuiltStatement


class RejectingRepostLRS:
    """A loopback proxy to Ralph that answers 409 to a batch holding any id Ralph already has.

    Like ADL's LRS: the whole batch is refused and nothing of it is stored; the message
    names the first id found. GETs are forwarded unchanged.
    """

    def __init__(self, upstream: RalphLRS) -> None:
        self.upstream = upstream
        self.conflicts = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, body: bytes | None) -> None:
                path = self.path.replace("/xAPI/", "", 1)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(
                    self.command, proxy.upstream.url + path, data=body, headers=headers, timeout=60
                )
                self._send(answer.status_code, answer.content, answer.headers.get("Content-Type", "application/json"))

            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                batch = json.loads(body)
                for statement in batch if isinstance(batch, list) else [batch]:
                    held = requests.get(
                        proxy.upstream.url + "statements",
                        params={"statementId": statement["id"]},
                        auth=(proxy.upstream.username, proxy.upstream.password),
                        headers={"X-Experience-API-Version": "1.0.3"},
                        timeout=30,
                    )
                    if held.ok and held.json().get("statements"):
                        proxy.conflicts += 1
                        self._send(409, f"A statement with ID {statement['id']} already exists".encode(), "text/html")
                        return
                self._forward(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/xAPI/"

    def __enter__(self) -> RejectingRepostLRS:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _all_sent(state_url: str) -> list[OutboxRow]:
    rows = _rows(state_url)
    assert [row.status for row in rows] == ["sent"] * len(rows), [(r.status, r.last_error) for r in rows]
    return rows


def test_a_rerun_after_a_kill_between_answer_and_mark_makes_no_dead_letter(
    state_url: str, fresh_ralph: RalphLRS, make_deployment: Callable[..., Deployment]
) -> None:
    built = _queue(state_url, 20)
    with RejectingRepostLRS(fresh_ralph) as strict, FaultyLRS(strict.url, plan=["ok", "kill"]) as proxy:
        killed = make_deployment(state_url, proxy.url, fresh_ralph.password, lrs_options="batch_size = 5")
        process = killed.popen("outbox", "flush")
        proxy.kill_pid = process.pid
        process.communicate(timeout=60)
        assert process.returncode == -9
        assert sum(row.status == "sent" for row in _rows(state_url)) == 5
        assert len(lrs_statements(fresh_ralph)) == 10  # the killed flush's second batch is stored, unmarked
        rerun = make_deployment(state_url, strict.url, fresh_ralph.password, lrs_options="batch_size = 10")
        result = rerun.run("outbox", "flush", check=True)
    assert strict.conflicts == 1  # the rerun's first batch holds the 5 stored, unmarked rows
    assert "sent 15 statements" in result.stdout and "0 dead letters" in result.stdout, "; ".join(
        str(r.last_error) for r in _rows(state_url) if r.status == "dead"
    )
    assert "(5 were already in the LRS: read back after a 409, equal)" in result.stdout
    _all_sent(state_url)
    _assert_lrs_holds_exactly(fresh_ralph, built)


def test_a_client_timeout_while_the_lrs_commits_makes_no_dead_letter(
    state_url: str, fresh_ralph: RalphLRS, make_deployment: Callable[..., Deployment]
) -> None:
    built = _queue(state_url, 8)
    with RejectingRepostLRS(fresh_ralph) as strict, FaultyLRS(strict.url, plan=["slow"], slow_seconds=2.5) as proxy:
        deployment = make_deployment(state_url, proxy.url, fresh_ralph.password, lrs_options="timeout = 1")
        result = deployment.run("outbox", "flush", check=True)
    assert proxy.actions == ["slow", "ok"] and strict.conflicts == 1
    assert "did not answer within 1 s" in result.stderr
    assert "sent 8 statements in 2 requests, 0 dead letters (8 were already in the LRS" in result.stdout
    _all_sent(state_url)
    _assert_lrs_holds_exactly(fresh_ralph, built)


def test_a_different_statement_under_our_id_is_a_dead_letter_with_both_digests(
    state_url: str, fresh_ralph: RalphLRS, make_deployment: Callable[..., Deployment]
) -> None:
    built: list[BuiltStatement] = _queue(state_url, 6)
    clash = json.loads(built[2].body)
    clash["result"] = {"extensions": {"https://other.example/extensions/x": 1}}
    stored = requests.post(
        fresh_ralph.url + "statements",
        json=[clash],
        auth=(fresh_ralph.username, fresh_ralph.password),
        headers={"X-Experience-API-Version": "1.0.3"},
        timeout=10,
    )
    assert stored.status_code == 200
    with RejectingRepostLRS(fresh_ralph) as strict:
        deployment = make_deployment(state_url, strict.url, fresh_ralph.password, lrs_options="batch_size = 6")
        result = deployment.run("outbox", "flush", check=True)
    assert "sent 5 statements" in result.stdout and "1 dead letters" in result.stdout
    dead = [row for row in _rows(state_url) if row.status == "dead"]
    assert [row.statement_id for row in dead] == [built[2].id]
    assert f"the LRS holds a different statement with id {built[2].id} (first difference: result;" in (
        dead[0].last_error or ""
    )
    assert "sent " in (dead[0].last_error or "") and "stored " in (dead[0].last_error or "")
    assert len(lrs_statements(fresh_ralph)) == 6


def test_doctor_round_trip_passes_on_every_run_against_an_lrs_that_answers_409(
    tmp_path, fresh_ralph: RalphLRS, make_deployment: Callable[..., Deployment]
) -> None:
    with RejectingRepostLRS(fresh_ralph) as strict:
        deployment = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", strict.url, fresh_ralph.password)
        first = deployment.run("doctor", "--write-probe")
        second = deployment.run("doctor", "--write-probe")
    for run in (first, second):
        assert any(line.startswith("ok   LRS round trip") for line in run.stdout.splitlines()), run.stdout
    assert "(stored now)" in first.stdout
    assert "already there (HTTP 409, read back and equal)" in second.stdout
    assert "a statement it holds is answered 409 (as ADL's LRS)" in first.stdout + second.stdout
    # Three sandbox statements, held once; the first run's re-post probe and every statement of the second meet 409.
    assert strict.conflicts == 1 + 4 and len(lrs_statements(fresh_ralph)) == 3

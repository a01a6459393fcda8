"""A fake Moodle REST web service over real HTTP on 127.0.0.1.

Usage::

    with FakeMoodle(preset="small", seed=1, token="tok-admin", limited_token="tok-limited") as fake:
        requests.post(f"{fake.url}/webservice/rest/server.php",
                      params={"wstoken": "tok-admin", "wsfunction": "core_course_get_courses",
                              "moodlewsrestformat": "json"})
        fake.data.add_posts(5)                       # new activity between two syncs
        fake.set_latency("core_completion_get_course_completion_status", 0.05)
        fake.inject_fault("mod_forum_get_discussion_posts", kind="reset", times=1)
        fake.stats["core_course_get_courses"]        # {"calls": 1, "bytes": ..., "errors": 0}

Behaviour follows the captured site (tests/data/README.md): errors are HTTP 200 bodies, wstoken /
wsfunction / moodlewsrestformat may come from the query string or the form body, parameters use
PHP array syntax.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from .functions import FUNCTIONS, KNOWN_NOT_IN_SERVICE, Call, check_keys
from .generator import Dataset, Preset
from .wsformat import (
    WsError,
    access_exception,
    encode_json,
    encode_xml,
    invalid_record,
    invalid_token,
    parse_php_form,
)

ENDPOINT = "/webservice/rest/server.php"
FAULT_KINDS = ("http502", "reset", "truncate", "slow")
# What nginx answers when PHP-FPM is gone (the "502 from a proxy" fault).
BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
    b"</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
# What PHP appends when max_execution_time kills a script mid-output (the "truncate" fault).
PHP_TIMEOUT = (
    b"<br />\n<b>Fatal error</b>:  Maximum execution time of 30 seconds exceeded in "
    b"<b>/var/www/moodle/lib/dml/moodle_read_slave_trait.php</b> on line <b>293</b><br />\n"
)


# Opt-in per-call latency (seconds) from the captured site: median "seconds" per function in
# _manifest.json (README "Timings": completion status ~0.05 s per user per course).
CAPTURED_LATENCY = {
    "core_webservice_get_site_info": 0.03,
    "core_course_get_courses": 0.13,
    "core_course_get_courses_by_field": 0.15,
    "core_course_get_categories": 0.02,
    "core_course_get_contents": 0.06,
    "core_course_get_updates_since": 0.06,
    "core_course_get_recent_courses": 0.17,
    "core_enrol_get_enrolled_users": 0.39,
    "core_enrol_get_users_courses": 0.05,
    "core_user_get_users_by_field": 0.06,
    "core_user_get_users": 0.04,
    "core_completion_get_course_completion_status": 0.049,
    "core_completion_get_activities_completion_status": 0.054,
    "mod_forum_get_forums_by_courses": 0.03,
    "mod_forum_get_forum_discussions": 0.06,
    "mod_forum_get_discussion_posts": 0.08,
    "mod_forum_get_discussion_posts_by_userid": 0.32,
    "mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses": 0.03,
}


@dataclass
class Fault:
    """A scheduled fault: fires on the matching calls after ``after`` of them went through normally."""

    kind: str
    function: str | None = None  # None = any function
    times: int = 1
    after: int = 0
    delay: float = 2.0  # for "slow"
    fraction: float = 0.5  # for "truncate": share of the body sent before the cut


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of parallel clients must queue, not be refused
    fake: FakeMoodle


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like nginx
    server: _Server
    timeout = 60  # idle keep-alive connections do not pin threads forever

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm holds the
        # body until the client's delayed ACK (~40 ms a call). nginx in front of a real Moodle sets it.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, False)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch(b"")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        self._dispatch(self.rfile.read(length) if length else b"")

    def _dispatch(self, body: bytes) -> None:
        path, _, query = self.path.partition("?")
        if path != ENDPOINT:
            self.send_simple(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")
            return
        pairs = parse_qsl(query, keep_blank_values=True) + parse_qsl(
            body.decode("utf-8", "replace"), keep_blank_values=True
        )
        self.server.fake._serve(self, pairs)

    def send_simple(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reset(self) -> None:
        """Abort the connection with a TCP RST and no answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def send_truncated(self, body: bytes, content_type: str) -> None:
        """200 without Content-Length, part of the body, a PHP fatal error, then close (PHP timeout)."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body + PHP_TIMEOUT)
        self.close_connection = True


class FakeMoodle:
    """A fake Moodle web service (REST, JSON and XML) on 127.0.0.1, backed by a generated ``Dataset``.

    Args:
        preset: "small" (~60 users, tests/demo) or "fixture" (10,000 users, like the captured site),
            or a ``generator.Preset``.
        seed: the data seed; same seed and preset give byte-identical responses.
        token: the admin token (sees everything).
        limited_token: optional token of a user without capabilities: users_by_field -> [],
            course-level calls -> errorcoursecontextnotvalid (fixtures ``*limited_user*``).
        port: 0 picks a free port.
        functions: the external service's functions (default: all served). Others -> accessexception.
        latency: seconds added per call, per function name ("*" = every function);
            ``CAPTURED_LATENCY`` reproduces the fixture site's median timings.
        max_concurrent: simultaneous calls being worked on (like PHP-FPM workers); others wait.
        debug: add ``debuginfo`` to errors (Moodle's developer debugging).
        wwwroot: base of URLs inside responses (fixed so bytes do not depend on the port).
    """

    def __init__(
        self,
        preset: str | Preset = "small",
        seed: int = 1,
        token: str = "tok-admin",
        limited_token: str | None = None,
        port: int = 0,
        functions: Iterable[str] | None = None,
        latency: dict[str, float] | None = None,
        max_concurrent: int | None = None,
        debug: bool = False,
        wwwroot: str = "http://127.0.0.1:8080",
    ):
        self.data = Dataset(preset, seed)
        self.tokens = {token: True}
        if limited_token:
            self.tokens[limited_token] = False
        self.token, self.limited_token = token, limited_token
        wanted = set(FUNCTIONS if functions is None else functions)
        self.functions = [name for name in FUNCTIONS if name in wanted]
        self.latency = dict(latency or {})
        self.debug = debug
        #: Site administration > Advanced features > Enable web services, and the REST protocol: with
        #: either off the real Moodle 4.5 answers every call an empty text/html 403 (tests/real_moodle).
        self.web_services = True
        self.wwwroot = wwwroot
        self.stats: dict[str, dict[str, int]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (function, params) in arrival order
        self._port = port
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._workers = threading.BoundedSemaphore(max_concurrent) if max_concurrent else None
        self._connections: set[socket.socket] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle
    def start(self) -> FakeMoodle:
        """Bind 127.0.0.1 and serve in a background thread."""
        self._httpd = _Server(("127.0.0.1", self._port), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-moodle", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and free the port."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> FakeMoodle:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._httpd is None:
            raise RuntimeError("FakeMoodle is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (append /webservice/rest/server.php)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """The REST endpoint URL."""
        return self.url + ENDPOINT

    # ------------------------------------------------------------- test knobs
    def set_max_concurrent(self, limit: int | None) -> None:
        """Change how many calls are worked on at once (None = unlimited); calls in flight finish."""
        self._workers = threading.BoundedSemaphore(limit) if limit else None

    def set_latency(self, function: str, seconds: float) -> None:
        """Add ``seconds`` to every call of ``function`` ("*" = all functions)."""
        with self._lock:
            self.latency[function] = seconds

    def inject_fault(
        self,
        function: str | None = None,
        kind: str = "reset",
        times: int = 1,
        after: int = 0,
        delay: float = 2.0,
        fraction: float = 0.5,
    ) -> Fault:
        """Schedule a fault on the next matching calls.

        Args:
            function: the wsfunction to hit (None = any).
            kind: "http502" (nginx 502 page), "reset" (TCP reset, no answer), "truncate" (PHP timeout:
                part of the body + a PHP fatal error, then close) or "slow" (answer after ``delay`` s).
            times: how many calls it affects.
            after: let this many matching calls through first.
            delay: seconds for "slow".
            fraction: share of the body sent by "truncate".

        Returns:
            The scheduled fault (its ``times`` counts down as it fires).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}, use one of {FAULT_KINDS}")
        fault = Fault(kind, function, times, after, delay, fraction)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Drop every scheduled fault."""
        with self._lock:
            self._faults.clear()

    def reset_stats(self) -> None:
        """Zero the counters and the call log."""
        with self._lock:
            self.stats.clear()
            self.calls.clear()

    @property
    def bytes_served(self) -> int:
        """Total response body bytes sent."""
        with self._lock:
            return sum(s["bytes"] for s in self.stats.values())

    def call_count(self, function: str | None = None) -> int:
        """Calls received for one function (None = all)."""
        with self._lock:
            if function is None:
                return sum(s["calls"] for s in self.stats.values())
            return self.stats.get(function, {}).get("calls", 0)

    # ------------------------------------------------------------ append API
    def add_posts(self, n: int) -> list[int]:
        """Shortcut for ``data.add_posts``."""
        return self.data.add_posts(n)

    def add_completions(self, n: int) -> list[tuple[int, int]]:
        """Shortcut for ``data.add_completions``."""
        return self.data.add_completions(n)

    def add_attendance(self, n: int) -> list[tuple[int, int]]:
        """Shortcut for ``data.add_attendance``."""
        return self.data.add_attendance(n)

    # -------------------------------------------------------------- serving
    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            (self._connections.add if alive else self._connections.discard)(conn)

    def _next_fault(self, function: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.function not in (None, function):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _count(self, function: str, nbytes: int, error: bool) -> None:
        with self._lock:
            entry = self.stats.setdefault(function, {"calls": 0, "bytes": 0, "errors": 0})
            entry["calls"] += 1
            entry["bytes"] += nbytes
            entry["errors"] += int(error)

    def _serve(self, handler: _Handler, pairs: list[tuple[str, str]]) -> None:
        names = ("wstoken", "wsfunction", "moodlewsrestformat")
        control = {key: value for key, value in pairs if key in names}
        fmt = "json" if control.get("moodlewsrestformat") == "json" else "xml"
        function = control.get("wsfunction", "")
        params_pairs = [(k, v) for k, v in pairs if not k.startswith(("wstoken", "wsfunction", "moodlews"))]
        if not self.web_services:
            self._count(function, 0, True)
            handler.send_simple(403, b"", "text/html; charset=utf-8")
            return
        fault = self._next_fault(function)
        workers = self._workers  # keep the one acquired even if set_max_concurrent swaps it
        if workers:
            workers.acquire()
        try:
            with self._lock:
                pause = self.latency.get(function, self.latency.get("*", 0.0))
            if fault and fault.kind == "slow":
                pause += fault.delay
            if pause:
                time.sleep(pause)
            body, error, params = self._answer(control.get("wstoken"), function, fmt, params_pairs)
        except Exception:  # a bug in the fake: make it loud instead of dropping the connection
            self._count(function, 0, True)
            handler.send_simple(500, traceback.format_exc().encode(), "text/plain; charset=utf-8")
            raise
        finally:
            if workers:
                workers.release()
        with self._lock:
            self.calls.append((function, params))
        content_type = "application/json" if fmt == "json" else "application/xml; charset=utf-8"
        if fault and fault.kind == "reset":
            self._count(function, 0, True)
            handler.reset()
        elif fault and fault.kind == "http502":
            self._count(function, len(BAD_GATEWAY), True)
            handler.send_simple(502, BAD_GATEWAY, "text/html")
        elif fault and fault.kind == "truncate":
            cut = body[: max(1, int(len(body) * fault.fraction))]
            self._count(function, len(cut) + len(PHP_TIMEOUT), True)
            handler.send_truncated(cut, content_type)
        else:
            self._count(function, len(body), error)
            handler.send_simple(200, body, content_type)

    def _answer(
        self, token: str | None, function: str, fmt: str, pairs: list[tuple[str, str]]
    ) -> tuple[bytes, bool, dict[str, Any]]:
        """Run one call; returns (body, is_error, parsed params). Errors are 200 bodies like Moodle's."""
        params = parse_php_form(pairs)
        try:
            if token not in self.tokens:
                raise invalid_token()
            spec = FUNCTIONS.get(function)
            if spec is None:
                if function in KNOWN_NOT_IN_SERVICE:
                    raise access_exception()
                raise invalid_record("external_functions", function, "name")
            if function not in self.functions:
                raise access_exception()
            check_keys(params, spec.params)
            admin = self.tokens[token]
            call = Call(
                self.data, 2 if admin else self.data.notable["limited_user"], admin, self.wwwroot, self.functions
            )
            with self.data.lock:  # handlers build fresh structures, so encoding can happen unlocked
                result = spec.handler(call, params)
            body = encode_json(result, spec.schema) if fmt == "json" else encode_xml(result, spec.schema)
            return body, False, params
        except WsError as err:
            return err.encode(fmt, self.debug), True, params

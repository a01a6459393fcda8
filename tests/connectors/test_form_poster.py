"""FormPoster (the Moodle client's HTTP) sends what requests would send, and fails as requests would.

A real loopback server records each request (request line, headers, body) and answers what the test
asks for; the same pairs go once through ``requests`` (a plain session, the environment read per
request) and once through :class:`~connectors.http.FormPoster`, and the recordings are compared.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from pydantic import SecretStr

from connectors.http import FormPoster
from connectors.moodle.client import MoodleAPIError, MoodleClient

PAIRS = [
    ("wstoken", "tok-poster-91f2"),
    ("wsfunction", "core_completion_get_course_completion_status"),
    ("options[0][name]", "Ujian Dinas ke-2 / 2026 & lulus?"),  # spaces, slash, & and ?
    ("values[0]", "Pelatihan Kepemimpinan Pengawas — angkatan ⅠⅠ"),  # non-ASCII: UTF-8, as requests does
]


class Recorder:
    """A loopback HTTP server that records requests and answers ``(status, headers, body)``."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None, body: bytes = b"{}") -> None:
        self.answer = (status, headers or {"Content-Type": "application/json"}, body)
        self.seen: list[dict[str, object]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorder.seen.append({"target": self.path, "headers": headers, "body": body})
                status, extra, content = recorder.answer
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webservice/rest/server.php"

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def _both(url: str, recorder: Recorder) -> tuple[dict[str, object], dict[str, object]]:
    """What requests and FormPoster each sent for PAIRS to ``url`` (recorded by ``recorder``)."""
    with requests.Session() as session:
        session.headers["User-Agent"] = "lms-bridge/0.1 (+https://github.com/lms-bridge)"
        session.post(url, data=PAIRS, timeout=10)
    poster = FormPoster(url, 2, timeout=10)
    try:
        answer = poster.post(urlencode(PAIRS).encode("ascii"))
    finally:
        poster.close()
    assert answer.status_code == 200 and answer.content == b"{}"
    by_requests, by_poster = recorder.seen
    return by_requests, by_poster


def test_the_request_is_the_one_requests_sends() -> None:
    with Recorder() as recorder:
        by_requests, by_poster = _both(recorder.url, recorder)
    assert by_poster == by_requests
    assert by_poster["target"] == "/webservice/rest/server.php"
    headers = by_poster["headers"]
    assert isinstance(headers, dict)
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in headers


def test_a_netrc_login_and_a_url_login_become_the_header_requests_sends(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login svc password pw-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with Recorder() as recorder:
        by_requests, by_poster = _both(recorder.url, recorder)
    assert by_poster == by_requests
    assert by_poster["headers"]["authorization"] == requests.auth._basic_auth_str("svc", "pw-netrc")  # type: ignore[index]
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with Recorder() as recorder:
        url = recorder.url.replace("http://", "http://who:pw-url@")
        by_requests, by_poster = _both(url, recorder)
    assert by_poster == by_requests
    assert by_poster["headers"]["authorization"] == requests.auth._basic_auth_str("who", "pw-url")  # type: ignore[index]


def test_a_plain_http_proxy_gets_the_whole_url_and_its_login(monkeypatch: pytest.MonkeyPatch) -> None:
    site = "http://moodle.example.invalid/webservice/rest/server.php"
    with Recorder() as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://px:pw-proxy@127.0.0.1:{proxy.port}")
        by_requests, by_poster = _both(site, proxy)
    assert by_poster == by_requests
    assert by_poster["target"] == site
    assert by_poster["headers"]["proxy-authorization"] == requests.auth._basic_auth_str("px", "pw-proxy")  # type: ignore[index]


def test_a_gzip_answer_is_decoded_and_a_redirect_is_an_answer_not_followed() -> None:
    with Recorder(headers={"Content-Encoding": "gzip"}, body=gzip.compress(b'{"ok": 1}')) as recorder:
        poster = FormPoster(recorder.url)
        assert poster.post(b"a=1").content == b'{"ok": 1}'
        recorder.answer = (301, {"Location": "https://elsewhere.example/webservice/rest/server.php"}, b"")
        answer = poster.post(b"a=1")
        poster.close()
    assert answer.status_code == 301 and answer.headers["location"].startswith("https://elsewhere.example/")
    assert len(recorder.seen) == 2


def test_a_moodle_site_that_redirects_is_refused_with_where_it_points() -> None:
    with Recorder(301, {"Location": "https://lms.example.go.id/webservice/rest/server.php"}, b"") as recorder:
        client = MoodleClient("demo", recorder.url.removesuffix("/webservice/rest/server.php"), SecretStr("tok-r1"))
        with client, pytest.raises(MoodleAPIError) as info:
            client.call("core_webservice_get_site_info")
    assert info.value.errorcode == "http301"
    assert "https://lms.example.go.id" in str(info.value) and "tok-r1" not in str(info.value)
    assert len(recorder.seen) == 1  # not followed, not retried


@contextmanager
def _silent_listener() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_failures_are_the_requests_exceptions_requests_raises() -> None:
    with _silent_listener() as port:
        poster = FormPoster(f"http://127.0.0.1:{port}/x", timeout=0.3)
        with pytest.raises(requests.ReadTimeout):
            poster.post(b"a=1")
        poster.close()
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    refused_port = free.getsockname()[1]
    free.close()  # nothing listens there now
    poster = FormPoster(f"http://127.0.0.1:{refused_port}/x", timeout=5)
    with pytest.raises(requests.ConnectionError) as info:
        poster.post(b"a=1")
    assert not isinstance(info.value, requests.Timeout)  # a refusal is not a time-out
    poster.close()

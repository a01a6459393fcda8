"""A one-site session reads the environment's proxy, CA bundle and netrc once, as requests would per request."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from connectors.http import make_session

URL = "https://moodle.example.go.id/webservice/rest/server.php"


def _per_request(url: str) -> dict:
    """What requests itself would merge in for one request with trust_env on."""
    return requests.Session().merge_environment_settings(url, {}, None, None, None)


def test_the_proxy_and_the_ca_bundle_are_the_ones_requests_would_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = make_session(url=URL)
    expected = _per_request(URL)
    assert session.trust_env is False
    assert session.proxies["https"] == expected["proxies"]["https"] == "http://proxy.example:3128"
    assert session.verify == expected["verify"] == "/etc/ssl/certs/ca-certificates.crt"


def test_no_proxy_leaves_the_site_unproxied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "moodle.example.go.id")
    assert make_session(url=URL).proxies == {}


def test_a_netrc_login_for_the_site_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine moodle.example.go.id login svc password pw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert make_session(url=URL).auth == ("svc", "pw")


def test_without_a_url_requests_reads_the_environment_per_request() -> None:
    assert make_session().trust_env is True

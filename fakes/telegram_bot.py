"""A fake Telegram Bot API server (getUpdates, getMe, getWebhookInfo, sendMessage) over real HTTP on 127.0.0.1.

Usage::

    with FakeTelegramBot(token="123456:test-token") as fake:
        fake.add_message(chat=group(-1001000000001, "CoP"), message_id=2, date=1710209700,
                         sender=user(100000001), text="hello")
        requests.post(f"{fake.url}/bot123456:test-token/getUpdates", json={"offset": 1, "timeout": 1})
        fake.inject_fault("429", retry_after=1)      # the next getUpdates answers 429 once
        fake.offsets                                  # every offset getUpdates was called with

Shapes follow https://core.telegram.org/bots/api: every answer is ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "...", "parameters": {"retry_after": S}}``. An update
is confirmed, and dropped, once ``getUpdates`` is called with an offset above its ``update_id``; a
poll with nothing to give waits up to ``timeout`` seconds (capped by ``max_poll_seconds``) for one.
Parameters come from the query string, a form body or a JSON body, as the real server accepts.

Run it alone with ``python -m fakes.telegram_bot --token T [--port N]``: it serves a few
messages of the shared Telegram fixture's group.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FAULT_KINDS = ("401", "409", "409-webhook", "429", "502", "reset", "slow")
BAD_GATEWAY = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>502 Bad Gateway</body>\r\n</html>\r\n"
_ERRORS = {
    "401": (401, "Unauthorized"),
    "409": (409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"),
    "409-webhook": (
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
    ),
}


def user(user_id: int, first_name: str = "Member") -> dict[str, Any]:
    """A ``User`` object (a person, not a bot)."""
    return {"id": user_id, "is_bot": False, "first_name": first_name}


def group(chat_id: int, title: str, kind: str = "supergroup") -> dict[str, Any]:
    """A ``Chat`` object of a group (``supergroup`` ids are ``-100...``, ``group`` ids ``-...``)."""
    return {"id": chat_id, "title": title, "type": kind}


@dataclass
class _Fault:
    kind: str
    times: int
    after: int
    retry_after: int
    seconds: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeTelegramBot


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silent: the path holds the token."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch(b"")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        self._dispatch(self.rfile.read(length) if length else b"")

    def _dispatch(self, body: bytes) -> None:
        parts = urlsplit(self.path)
        params: dict[str, Any] = dict(parse_qsl(parts.query))
        if body:
            if (self.headers.get("Content-Type") or "").startswith("application/json"):
                try:
                    decoded = json.loads(body)
                except ValueError:
                    return self.send_json(
                        400, {"ok": False, "error_code": 400, "description": "Bad Request: can't parse JSON object"}
                    )
                params.update(decoded if isinstance(decoded, dict) else {})
            else:
                params.update(parse_qsl(body.decode("utf-8", "replace")))
        token, _, method = parts.path.removeprefix("/bot").partition("/")
        self.server.fake.handle(self, token, method, params)

    def send_json(self, status: int, payload: dict[str, Any] | bytes, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reset(self) -> None:
        """Close the connection without an answer (a connection reset)."""
        self.close_connection = True
        self.connection.shutdown(2)


class FakeTelegramBot:
    """The fake server: scripted updates, offset confirmation, long polling, injectable faults.

    Args:
        token: the one bot token it accepts (any other gets 401 Unauthorized).
        max_poll_seconds: the longest a poll waits, whatever ``timeout`` asks (short in tests).
        port: the port to bind on 127.0.0.1 (0: a free one).
    """

    def __init__(self, token: str, *, max_poll_seconds: float = 2.0, port: int = 0) -> None:
        self.token = token
        self.max_poll_seconds = max_poll_seconds
        self._port = port
        self._updates: list[dict[str, Any]] = []
        self._next_id = 100_000_001
        self._changed = threading.Condition()
        self._faults: list[_Fault] = []
        self.offsets: list[int | None] = []
        #: A webhook set on the bot (setWebhook): getWebhookInfo shows it, and getUpdates is refused with 409.
        self.webhook_url = ""
        self.calls: dict[str, int] = {}
        #: Messages the bot was asked to send (sendMessage: chat_id and text), as the real API takes them.
        self.sent: list[dict[str, Any]] = []
        #: Chats sendMessage may post in (the real API answers "chat not found" for a chat the bot is not in).
        self.known_chats: set[str] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- lifecycle --

    def start(self) -> FakeTelegramBot:
        self._stopping = False
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-telegram-bot", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            with self._changed:
                self._stopping = True
                self._changed.notify_all()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeTelegramBot:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The ``api_url`` to configure (no trailing slash)."""
        assert self._server is not None, "start the fake first"  # noqa: S101
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- script --

    def add_update(self, **content: Any) -> int:
        """Queue an update (``message=...``, ``edited_message=...``...); returns its ``update_id``."""
        with self._changed:
            update_id = self._next_id
            self._next_id += 1
            self._updates.append({"update_id": update_id, **content})
            self._changed.notify_all()
        return update_id

    def add_message(
        self,
        *,
        chat: dict[str, Any],
        message_id: int,
        date: int,
        sender: dict[str, Any] | None = None,
        edited: bool = False,
        **fields: Any,
    ) -> int:
        """Queue a ``message`` (or ``edited_message``) update; ``fields`` are other ``Message`` keys."""
        message: dict[str, Any] = {"message_id": message_id, "date": date, "chat": chat}
        if sender is not None:
            message["from"] = sender
        if edited:
            message["edit_date"] = date + 60
        message.update(fields)
        return self.add_update(**{"edited_message" if edited else "message": message})

    def inject_fault(
        self, kind: str, *, times: int = 1, after: int = 0, retry_after: int = 1, seconds: float = 5.0
    ) -> None:
        """Make ``times`` getUpdates calls fail, after ``after`` good ones: one of :data:`FAULT_KINDS`.

        ``429`` answers with ``parameters.retry_after``; ``slow`` waits ``seconds`` before a normal answer.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r} (one of {', '.join(FAULT_KINDS)})")
        self._faults.append(_Fault(kind, times, after, retry_after, seconds))

    @property
    def pending(self) -> list[int]:
        """The update ids not confirmed yet."""
        with self._changed:
            return [update["update_id"] for update in self._updates]

    # -- answers --

    def handle(self, handler: _Handler, token: str, method: str, params: dict[str, Any]) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if token != self.token:
            return handler.send_json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        if method == "getMe":
            bot_id = int(self.token.split(":", 1)[0]) if self.token.split(":", 1)[0].isdigit() else 1
            return handler.send_json(
                200,
                {
                    "ok": True,
                    "result": {"id": bot_id, "is_bot": True, "first_name": "CoP bot", "username": "cop_bridge_bot"},
                },
            )
        if method == "getWebhookInfo":
            info: dict[str, Any] = {"url": self.webhook_url, "has_custom_certificate": False}
            info["pending_update_count"] = len(self.pending)
            return handler.send_json(200, {"ok": True, "result": info})
        if method == "sendMessage":
            if not params.get("chat_id") or not params.get("text"):
                return handler.send_json(
                    400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
                )
            if str(params["chat_id"]) not in self.known_chats:
                return handler.send_json(
                    400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
                )
            self.sent.append({"chat_id": str(params["chat_id"]), "text": str(params["text"])})
            message = {"message_id": len(self.sent), "date": int(time.time()), "text": params["text"]}
            return handler.send_json(200, {"ok": True, "result": message})
        if method == "getUpdates" and self.webhook_url:
            return handler.send_json(409, {"ok": False, "error_code": 409, "description": _ERRORS["409-webhook"][1]})
        if method != "getUpdates":
            return handler.send_json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        fault = self._take_fault()
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        elif fault is not None:
            return self._fail(handler, fault)
        try:
            offset = int(params["offset"]) if params.get("offset") is not None else None
            limit = int(params.get("limit", 100))
            timeout = float(params.get("timeout", 0))
        except (TypeError, ValueError):
            return handler.send_json(
                400, {"ok": False, "error_code": 400, "description": "Bad Request: wrong parameter"}
            )
        if not 1 <= limit <= 100:
            limit = 100  # the real server clamps the limit
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            allowed = json.loads(allowed) if allowed.startswith("[") else [allowed]
        self.offsets.append(offset)
        handler.send_json(200, {"ok": True, "result": self._poll(offset, limit, timeout, allowed or None)})

    def _take_fault(self) -> _Fault | None:
        with self._changed:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.after > 0:
                fault.after -= 1
                return None
            fault.times -= 1
            if fault.times <= 0:
                self._faults.pop(0)
            return fault

    @staticmethod
    def _fail(handler: _Handler, fault: _Fault) -> None:
        if fault.kind == "reset":
            return handler.reset()
        if fault.kind == "502":
            return handler.send_json(502, BAD_GATEWAY, "text/html")
        if fault.kind == "429":
            return handler.send_json(
                429,
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {fault.retry_after}",
                    "parameters": {"retry_after": fault.retry_after},
                },
            )
        status, description = _ERRORS[fault.kind]
        handler.send_json(status, {"ok": False, "error_code": status, "description": description})

    def _poll(self, offset: int | None, limit: int, timeout: float, allowed: list[str] | None) -> list[dict[str, Any]]:
        deadline = time.monotonic() + min(timeout, self.max_poll_seconds)
        with self._changed:
            if offset is not None:
                # Confirm: everything below the offset is forgotten (a negative offset is not modelled).
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while True:
                ready = [u for u in self._updates if allowed is None or any(k in u for k in allowed)]
                left = deadline - time.monotonic()
                if ready or left <= 0 or self._stopping:
                    return ready[:limit]
                self._changed.wait(left)


def _sample(fake: FakeTelegramBot) -> None:
    """The sample export's group (telegram_single_chat.json) as the Bot API would give it."""
    chat = group(-1001000000001, "CoP Widyaiswara Angkatan 7")
    fake.add_message(
        chat=chat,
        message_id=2,
        date=1710209700,
        sender=user(100000001, "Budi"),
        text="Topik hari ini: evaluasi level 3",
    )
    fake.add_message(
        chat=chat,
        message_id=3,
        date=1710210000,
        sender=user(100000002, "Siti"),
        text="Setuju, lihat https://lms.example.org/mod/forum",
        reply_to_message={"message_id": 2, "date": 1710209700, "chat": chat},
    )
    fake.add_message(
        chat=chat, message_id=4, date=1710212400, sender=user(100000001, "Budi"), video_chat_ended={"duration": 3600}
    )


def main() -> None:
    """Serve the sample until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with FakeTelegramBot(args.token, port=args.port) as fake:
        _sample(fake)
        print(f"fake Telegram Bot API on {fake.url} (Ctrl-C stops it)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

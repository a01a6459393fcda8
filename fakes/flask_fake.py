"""A Flask app served on 127.0.0.1 in a thread: what the fake Zoom and Classroom APIs have in common."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Self

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    """No access log on stderr (tests capture stderr; the fake's lines are noise there)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class FlaskFake:
    """Serves ``self.app`` on 127.0.0.1 (a free port unless one is given) until :meth:`stop`.

    Use as a context manager; :attr:`url` is the base URL once started.
    """

    #: The serving thread's name (shows in thread dumps).
    thread_name = "flask-fake"

    def __init__(self, app: Flask, port: int = 0) -> None:
        self.app = app
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._server = make_server("127.0.0.1", self._port, self.app, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``)."""
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_port}"

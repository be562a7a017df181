"""The page's thin IO driver: the token, a threaded WSGI server on
127.0.0.1 (never another interface: a site's reverse proxy is how anybody
else reaches it), its URL first on stdout, one dated UTC line per request
on stderr (without the token)."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server

from ..sites.board import Board
from .access import Access, token_from
from .app import Desk


class _Quiet(WSGIRequestHandler):
    def log_request(self, code="-", size="-") -> None:
        path = self.path.split("?", 1)[0]  # never the token
        sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} desk: {self.command} {path} {code}\n")

    def log(self, type: str, message: str, *args) -> None:
        if type == "error":
            sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} desk: {message % args}\n")


def token_path(board: Board) -> Path:
    return board.private / "desk.token"


def serve(board: Board, port: int, token_file: Path | None = None, keep_token: bool = False,
          user_header: str | None = None, say=print) -> None:
    path = token_file or token_path(board)
    access = Access(token_from(path, keep_token))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", port, Desk(board, access, user_header), threaded=True,
                         request_handler=_Quiet)
    say(f"http://127.0.0.1:{server.server_port}/?token={access.token}")
    say(f"the token is also in {path} (owner-only); stop with Ctrl-C")
    try:
        server.serve_forever()
    finally:
        server.server_close()

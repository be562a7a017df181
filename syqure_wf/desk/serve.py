"""The page's thin IO driver: the token, a threaded WSGI server on
127.0.0.1 (never another interface: a site's reverse proxy is how anybody
else reaches it), its URL first on stdout, one dated UTC line per request
on stderr (without the token)."""
from __future__ import annotations

import logging
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server

from ..sites.board import Board
from .access import Access, token_from
from .app import Desk


def _handler(log):
    class Quiet(WSGIRequestHandler):
        def log_request(self, code="-", size="-") -> None:
            log(f"desk: {self.command} {self.path.split('?', 1)[0]} {code}")  # never the token

        def log(self, type: str, message: str, *args) -> None:
            if type == "error":
                log(f"desk: {message % args}")
    return Quiet


def token_path(board: Board) -> Path:
    return board.private / "desk.token"


def serve(board: Board, port: int, token_file: Path | None = None, keep_token: bool = False,
          user_header: str | None = None, say=print, log=print) -> None:
    """``say``: the URL (stdout); ``log``: one line per request."""
    path = token_file or token_path(board)
    access = Access(token_from(path, keep_token))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", port, Desk(board, access, user_header), threaded=True,
                         request_handler=_handler(log))
    say(f"http://127.0.0.1:{server.server_port}/?token={access.token}")
    say(f"the token is also in {path} (owner-only); stop with Ctrl-C")
    try:
        server.serve_forever()
    finally:
        server.server_close()

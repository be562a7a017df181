"""The page's WSGI app: routes, the access check, and the few reads and
one request it makes (runs, show, the audit log, the site key; approve or
reject through sites/operator.py). Every answer carries a Content Security
Policy that allows no script at all: peer text is escaped by the
templates, and could not run even if it were not."""
from __future__ import annotations

import getpass
import time
from importlib import resources
from urllib.parse import urlencode

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from ..errors import SyqureError
from ..sites import lifecycle as lc
from ..sites.audit import read as read_audit
from ..sites.board import Board
from ..sites.operator import runs
from ..sites.operator import request as ask_agent
from ..keys.sitekey import Refused, published
from . import sheet
from .access import Access
from .review import environment, review

AUDIT_SHOWN = 200  # newest audit lines on the front page
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token never leaves in a Referer
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
URLS = Map([Rule("/", endpoint="index"), Rule("/run", endpoint="run"),
            Rule("/decide", endpoint="decide", methods=["POST"]),
            Rule("/static/<name>", endpoint="static")])


class Desk:
    def __init__(self, board: Board, access: Access, user_header: str | None = None) -> None:
        self.board, self.access, self.user_header = board, access, user_header
        self.env = environment()

    def __call__(self, environ, start_response):
        return self.respond(Request(environ))(environ, start_response)

    def respond(self, req: Request) -> Response:
        try:
            endpoint, args = URLS.bind_to_environ(req.environ).match()
            if not self.access.allowed(req.args.get("token"), req.cookies.get(self.access.cookie),
                                       req.headers.get("Authorization")):
                resp = self.page("refused.html", status=401)
            elif req.args.get("token"):  # the token into a cookie, out of the address bar
                rest = {k: v for k, v in req.args.items() if k != "token"}
                resp = redirect("./" + req.path.lstrip("/") + ("?" + urlencode(rest) if rest else ""), 303)
                resp.set_cookie(self.access.cookie, self.access.token, httponly=True, samesite="Strict",
                                secure=req.scheme == "https")
            else:
                resp = getattr(self, endpoint)(req, **args)
        except HTTPException as exc:
            resp = exc.get_response()
        resp.headers.update(HEADERS)
        return resp

    def page(self, name: str, status: int = 200, **data) -> Response:
        body = self.env.get_template(name).render(me=self.board.me, csrf=self.access.csrf, **data)
        return Response(body, status=status, mimetype="text/html")

    # -- pages
    def index(self, req: Request) -> Response:
        found = runs(self.board)
        found.sort(key=lambda r: -float(r.get("expires") or 0))
        waiting = [r for r in found if r.get("state") == lc.PENDING]
        audit = read_audit(self.board.audit_path)[-AUDIT_SHOWN:][::-1]
        return self.page("index.html", waiting=waiting, runs=found, audit=audit, key=self.key(),
                         now=time.time())

    def run(self, req: Request) -> Response:
        run_id, submitter = req.args.get("id", ""), req.args.get("submitter") or None
        try:
            return self.page("run.html", **review(self.board, run_id, submitter))
        except (SyqureError, ValueError) as exc:
            return self.page("error.html", status=404, message=str(exc))

    def decide(self, req: Request) -> Response:
        form = req.form
        if not self.access.csrf_ok(form.get("csrf")):
            return self.page("error.html", status=403, message="this form is stale or not from this page: reload it")
        action, run_id, submitter = form.get("action"), form.get("run_id", ""), form.get("submitter", "")
        reason = " ".join(form.get("reason", "").split())
        if action not in ("approve", "reject") or (action == "reject" and not reason):
            return self.page("error.html", status=400, message="approve, or reject with a reason")
        said = []
        try:
            ask_agent(self.board, run_id, action, reason, say=said.append, submitter=submitter,
                      manifest=form.get("manifest", ""), by=self.who(req))
        except (SyqureError, ValueError) as exc:
            return self.page("error.html", status=409, message=str(exc))
        return redirect("run?" + urlencode({"id": run_id, "submitter": submitter}), 303)

    def static(self, req: Request, name: str) -> Response:
        if name == "highlight.css":
            return Response(sheet.highlight_css(), mimetype="text/css")
        if name != "desk.css":
            raise NotFound()
        return Response(resources.files("syqure_wf.desk").joinpath("static", name).read_text(), mimetype="text/css")

    # -- what the pages read
    def key(self) -> str:
        try:
            key = published(self.board.folder, self.board.me)
        except Refused as exc:
            return f"unusable: {exc}"
        return key.fingerprint if key else "none published yet (the agent publishes it when it starts)"

    def who(self, req: Request) -> str:
        """Who pressed the button: the user the site's SSO proxy names, else this desk's user."""
        named = req.headers.get(self.user_header) if self.user_header else None
        return f"{' '.join(named.split())[:100]} (desk)" if named else f"{getpass.getuser()} (desk)"

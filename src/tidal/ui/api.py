"""The routes of the management API, ``/api/v1/...``: the same answers as ``tidal ... --json``.

Every route calls the :class:`~tidal.workspace.Workspace` and shapes its answer with
:mod:`tidal.workspace.shapes`, as the CLI does, and writes it with the same JSON encoding. Lists come as a
page: ``{"items": [...], "limit": n, "offset": k, "next_offset": k + n or null}``. Reading needs the role
``viewer``; promote, rollback, monitor, backtest and the loop's controls need ``operator``; tokens need
``admin``. Every action is an event whose ``data.actor`` names the token that did it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tidal.core.entities import Event
from tidal.core.errors import NotFound
from tidal.core.tokens import ROLES, SCOPES
from tidal.ui.auth import COOKIE, CSRF_HEADER, Authenticator, Caller
from tidal.ui.jobs import BacktestJobs, Busy, Job
from tidal.workspace import Workspace
from tidal.workspace.shapes import (
    dumps,
    event_to_dict,
    model_detail,
    models_list,
    report_to_dict,
    run_detail,
    run_summary,
    snapshot_detail,
    snapshot_to_dict,
)

logger = logging.getLogger("tidal.ui")
MAX_LIMIT = 1000


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` written exactly as ``tidal ... --json`` writes it."""
    return Response(dumps(data), status_code=status, media_type="application/json")


def page(items: list[Any], limit: int, offset: int, more: bool) -> Response:
    return json_response({"items": items, "limit": limit, "offset": offset,
                          "next_offset": offset + limit if more else None})


def page_of(found: Sequence[Any], limit: int, offset: int, shape: Callable[[Any], Any] = lambda x: x) -> Response:
    """The page ``[offset, offset + limit)`` of ``found`` (read with one row more than the page, or whole), each
    item shaped by ``shape``; ``next_offset`` is set when ``found`` goes on past the page."""
    return page([shape(x) for x in found[offset:offset + limit]], limit, offset, len(found) > offset + limit)


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(..., ge=1, description="The version the alias will point at.")
    alias: str = Field("champion", description="The alias to move.")
    reason: str | None = Field(None, max_length=500, description="Why, recorded in the event.")


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=500, description="Why, recorded in the event.")


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., description="A name for people: who or what uses the token.")
    role: str = Field("viewer", description=f"One of {', '.join(ROLES)}.")
    scopes: list[str] = Field(default_factory=list, description=f"Serving scopes: {', '.join(SCOPES)}.")
    expires_in_days: float | None = Field(None, gt=0, description="Lifetime in days (none: no expiry).")


class SessionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(..., description="An API token; the answer sets the session cookie.")


def role(needed: str) -> Callable[[Request], Caller]:
    """A dependency: the request's caller (see :mod:`tidal.ui.auth`), refused unless its role is ``needed``
    or above."""
    def check(request: Request) -> Caller:
        auth: Authenticator = request.app.state.auth
        caller = auth.caller(request.method, request.headers.get("authorization"),
                             request.cookies.get(COOKIE), request.headers.get(CSRF_HEADER))
        caller.require(needed)
        return caller
    return check


Viewer = Annotated[Caller, Depends(role("viewer"))]
Operator = Annotated[Caller, Depends(role("operator"))]
Admin = Annotated[Caller, Depends(role("admin"))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, description="Items to skip.")]


def build_router(ws: Workspace, auth: Authenticator) -> APIRouter:
    """The ``/api/v1`` routes over ``ws``."""

    r = APIRouter(prefix="/api/v1")

    # -- who, and the dashboard's session ---------------------------------------------------------
    @r.get("/whoami", tags=["session"], summary="The calling token (never its secret)")
    def whoami(caller: Viewer) -> Response:
        return json_response({"actor": caller.actor, "via": caller.via,
                              "token": None if caller.token is None else caller.token.to_dict()})

    @r.post("/session", tags=["session"], summary="Sign in with a token: sets the HttpOnly session cookie")
    def sign_in(body: SessionBody, request: Request) -> Response:
        if not auth.enabled:
            return json_response({"actor": "anonymous", "csrf_token": None})
        token = ws.tokens.authenticate(body.token)
        cookie, csrf, max_age = auth.sessions.issue(token)
        out = json_response({"actor": token.actor, "csrf_token": csrf, "token": token.to_dict()})
        out.set_cookie(COOKIE, cookie, max_age=max_age, httponly=True, samesite="strict", path="/",
                       secure=request.url.scheme == "https")
        logger.info("session opened for %s", token.actor)
        return out

    @r.get("/session", tags=["session"], summary="The dashboard's session: who, with which role, and its "
                                                 "CSRF token (a page of another site cannot read it)")
    def session(request: Request) -> Response:
        if auth.enabled and not request.headers.get("authorization") and not request.cookies.get(COOKIE):
            # not signed in is an answer, not an error: the dashboard asks this first on every load
            return json_response({"signed_in": False, "actor": None, "via": None, "csrf_token": None,
                                  "role": None, "token": None})
        caller = role("viewer")(request)
        csrf = None
        if caller.via == "cookie":
            csrf = auth.sessions.read(request.cookies.get(COOKIE, ""))[1]
        return json_response({"signed_in": True, "actor": caller.actor, "via": caller.via, "csrf_token": csrf,
                              "role": "admin" if caller.token is None else caller.token.role,
                              "token": None if caller.token is None else caller.token.to_dict()})

    @r.delete("/session", tags=["session"], summary="Sign out: clears the session cookie")
    def sign_out() -> Response:
        out = json_response({"signed_out": True})
        out.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return out

    # -- the project, runs -------------------------------------------------------------------------
    @r.get("/project", tags=["project"], summary="The project this server manages")
    def project(caller: Viewer) -> Response:
        return json_response({"name": ws.spec.name, "spec_digest": ws.spec.digest, "task": ws.spec.model.task,
                              "strategy": ws.spec.deploy.strategy.kind})

    @r.get("/projects", tags=["project"], summary="The projects this server manages (one: its workspace's)")
    def projects(caller: Viewer) -> Response:
        return page([{"name": ws.spec.name, "spec_digest": ws.spec.digest}], 1, 0, False)

    @r.get("/runs", tags=["runs"], summary="Runs, newest first (as `tidal runs ls --json`)")
    def runs(caller: Viewer, limit: Limit = 50, offset: Offset = 0) -> Response:
        return page_of(ws.runs.list(limit=offset + limit + 1), limit, offset, run_summary)

    @r.get("/runs/{run_id}", tags=["runs"], summary="One run: steps, params, metrics, curves, log "
                                                     "(as `tidal runs show --json`)")
    def run(run_id: str, caller: Viewer) -> Response:
        d = ws.runs.get(run_id)
        return json_response(run_detail(d, ws.runs.log(d.run.id)))

    # -- data --------------------------------------------------------------------------------------
    @r.get("/snapshots", tags=["data"], summary="Data snapshots, newest first (as `tidal snapshots ls --json`)")
    def snapshots(caller: Viewer, limit: Limit = 50, offset: Offset = 0) -> Response:
        return page_of(ws.snapshots.list(limit=offset + limit + 1), limit, offset, snapshot_to_dict)

    @r.get("/snapshots/{digest}", tags=["data"], summary="One snapshot: schema, column profiles, what was found "
                                                         "in it, versions trained on it (as `tidal snapshots show`)")
    def snapshot(digest: str, caller: Viewer) -> Response:
        return json_response(snapshot_detail(ws, digest))

    # -- models ------------------------------------------------------------------------------------
    @r.get("/models", tags=["models"], summary="Every version with its state and aliases "
                                               "(as `tidal models ls --json`)")
    def models(caller: Viewer, name: str | None = None, limit: Limit = 100, offset: Offset = 0) -> Response:
        return page_of(models_list(ws, name), limit, offset)

    @r.get("/models/{name}/versions/{version}", tags=["models"],
           summary="One version: states, why it serves, lineage, events (as `tidal models show --json`)")
    def model(name: str, version: str, caller: Viewer) -> Response:
        return json_response(model_detail(ws, f"{name}:{version}"))

    @r.get("/models/{name}/versions/{version}/lineage", tags=["models"],
           summary="Where a version comes from: run, snapshot, spec, code, environment")
    def lineage(name: str, version: str, caller: Viewer) -> Response:
        mv = ws.models.get(f"{name}:{version}")
        return json_response({"name": mv.name, "version": mv.version, "artifact": mv.artifact_digest,
                              "lineage": mv.lineage.to_dict(), "serving": ws.models.serving(mv).to_dict()})

    @r.get("/models/{name}/aliases", tags=["models"], summary="The aliases of a model")
    def aliases(name: str, caller: Viewer) -> Response:
        return json_response([{"name": a.name, "alias": a.alias, "version": a.version,
                               "updated_at": a.updated_at.isoformat()} for a in ws.models.aliases(name)])

    @r.post("/models/{name}/promote", tags=["actions"],
            summary="Point an alias (champion by default) at a version (operator; as `tidal promote --json`)")
    def promote(name: str, body: PromoteBody, caller: Operator) -> Response:
        previous = ws.promote(name, body.version, alias=body.alias, reason=body.reason, actor=caller.actor)
        logger.info("%s: %s of %s → %s", caller.actor, body.alias, name, body.version)
        return json_response({"name": name, "alias": body.alias, "from": previous, "to": body.version})

    @r.post("/models/{name}/rollback", tags=["actions"],
            summary="Move the champion back to the previous one (operator; as `tidal rollback --json`)")
    def rollback(name: str, body: ReasonBody, caller: Operator) -> Response:
        current = ws.models.get(f"{name}:champion").version
        to = ws.rollback(name, reason=body.reason, actor=caller.actor)
        logger.info("%s: rolled %s back %s → %s", caller.actor, name, current, to)
        return json_response({"name": name, "alias": "champion", "from": current, "to": to})

    # -- events, monitoring -------------------------------------------------------------------------
    @r.get("/events", tags=["events"], summary="Recorded decisions, oldest first among the newest "
                                               "(as `tidal events --json`)")
    def events(caller: Viewer, limit: Limit = 50, offset: Offset = 0, subject: str | None = None,
               kind: str | None = None) -> Response:
        found = ws.events(limit=limit + offset + 1, subject=subject, kind=kind)
        more = len(found) > limit + offset
        found = found[1:] if more else found
        items = found[: len(found) - offset] if offset else found
        return page([event_to_dict(e) for e in items[-limit:]], limit, offset, more)

    @r.get("/reports", tags=["monitoring"], summary="Monitoring reports, newest first "
                                                    "(as `tidal reports ls --json`)")
    def reports(caller: Viewer, limit: Limit = 20, offset: Offset = 0, model: str | None = None) -> Response:
        return page_of(ws.reports(model=model, limit=offset + limit + 1), limit, offset,
                       lambda x: report_to_dict(x, body=False))

    @r.get("/reports/{report_id}", tags=["monitoring"], summary="One report (as `tidal reports show --json`)")
    def report(report_id: str, caller: Viewer) -> Response:
        return json_response(report_to_dict(ws.report(report_id)))

    @r.post("/monitor", tags=["actions"], summary="Monitor the champion's recent predictions now (operator)")
    def monitor(caller: Operator, window: int | None = Query(None, ge=1)) -> Response:
        found = ws.monitor(window=window)
        if not found.window.get("rows"):
            return json_response({"outcome": "no_predictions", "stored": False, "model": found.model,
                                  "version": found.version, "window": found.window})
        return json_response({**report_to_dict(found), "outcome": "reported", "stored": True})

    # -- the loop ------------------------------------------------------------------------------------
    @r.get("/loop", tags=["loop"], summary="The loop's state (as `tidal loop --status --json`)")
    def loop(caller: Viewer) -> Response:
        return json_response(ws.loop.status())

    @r.post("/loop/pause", tags=["actions"], summary="Pause the loop's controller (operator)")
    def pause(body: ReasonBody, caller: Operator) -> Response:
        return json_response(ws.loop.pause(actor=caller.actor, reason=body.reason))

    @r.post("/loop/resume", tags=["actions"], summary="Resume the loop's controller (operator)")
    def resume(body: ReasonBody, caller: Operator) -> Response:
        return json_response(ws.loop.resume(actor=caller.actor, reason=body.reason))

    @r.post("/loop/retrain", tags=["actions"], summary="Ask the controller to retrain at its next tick (operator)")
    def retrain(body: ReasonBody, caller: Operator) -> Response:
        return json_response(ws.loop.retrain_now(actor=caller.actor, reason=body.reason))

    # -- backtests -----------------------------------------------------------------------------------
    @r.get("/backtests", tags=["backtests"], summary="Past backtests (their backtest.done events), oldest first")
    def backtests(caller: Viewer, limit: Limit = 20) -> Response:
        found = ws.events(kind="backtest.done", limit=limit)
        return page([event_to_dict(e) for e in found], limit, 0, False)

    def backtest_failed(job: Job) -> None:
        ws.store.append_event(Event(kind="backtest.failed", subject=f"project:{ws.spec.name}", time=ws.clock.now(),
                                    message=f"the backtest {job.by} started failed: {job.error['error']}",
                                    data={"actor": job.by, "job": job.id, **job.error}))

    jobs = BacktestJobs(lambda: ws.backtest().to_dict(), failed=backtest_failed)

    @r.post("/backtests", tags=["actions"], status_code=202,
            summary="Start a backtest (operator): 202 with the job to poll; 409 while one runs")
    def backtest(caller: Operator) -> Response:
        try:
            job = jobs.start(caller.actor)
        except Busy as busy:
            return json_response({"error": f"a backtest is running already (started by {busy.job.by} at "
                                           f"{busy.job.started_at.isoformat(timespec='seconds')})",
                                  "hint": f"wait for it: GET /api/v1/backtests/jobs/{busy.job.id}",
                                  "job": busy.job.to_dict()}, status=409)
        logger.info("%s: backtest %s started", caller.actor, job.id)
        ws.store.append_event(Event(kind="backtest.started", subject=f"project:{ws.spec.name}", time=ws.clock.now(),
                                    message=f"backtest started by {caller.actor}",
                                    data={"actor": caller.actor, "job": job.id}))
        out = json_response(job.to_dict(), status=202)
        out.headers["Location"] = f"/api/v1/backtests/jobs/{job.id}"
        return out

    @r.get("/backtests/jobs/{job_id}", tags=["backtests"],
           summary="A backtest started with POST: running, done (with its result) or failed (with why)")
    def backtest_job(job_id: str, caller: Viewer) -> Response:
        job = jobs.get(job_id)
        if job is None:
            raise NotFound(f"no backtest job {job_id!r} on this server",
                           hint="jobs live as long as the server; finished backtests: GET /api/v1/backtests")
        return json_response(job.to_dict())

    # -- tokens ----------------------------------------------------------------------------------------
    @r.get("/tokens", tags=["tokens"], summary="Every token, never a secret (admin)")
    def tokens(caller: Admin) -> Response:
        return json_response([t.to_dict() for t in ws.tokens.list()])

    @r.post("/tokens", tags=["tokens"], status_code=201,
            summary="Create a token (admin): the answer holds its text, shown this once")
    def create_token(body: TokenBody, caller: Admin) -> Response:
        token, text = ws.tokens.create(body.name, role=body.role, scopes=body.scopes, actor=caller.actor,
                                       expires_in=None if body.expires_in_days is None
                                       else timedelta(days=body.expires_in_days))
        return json_response({**token.to_dict(), "token": text}, status=201)

    @r.delete("/tokens/{token_id}", tags=["tokens"], summary="Revoke a token at once (admin)")
    def revoke_token(token_id: str, caller: Admin) -> Response:
        # an admin may revoke its own token: the next request with it is refused
        return json_response(ws.tokens.revoke(token_id, actor=caller.actor).to_dict())

    return r


__all__ = ["MAX_LIMIT", "build_router", "json_response", "page"]

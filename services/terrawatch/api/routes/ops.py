"""``/ops``: health, pipeline status and the runbook's actions (each audited in ``audit_log``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from terrawatch.api.deps import ApiDeps
from terrawatch.api.security import ANONYMOUS_VIEWER, Principal
from terrawatch.domain.errors import BadRequest
from terrawatch.service import dlq as dlq_svc
from terrawatch.store import audit as audit_log

SceneId = Annotated[str, Path(min_length=1, max_length=256, description="Scene (STAC Item) id.")]
DLQ_ID = r"^[0-9]{1,6}/[0-9]{1,19}$"


class Health(BaseModel):
    status: Literal["ok"]


class CheckOut(BaseModel):
    ok: bool
    ms: float = Field(description="Time the check took (ms).")
    detail: str


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckOut] = Field(description="kafka, postgis, triton, ray")


class PartitionLag(BaseModel):
    partition: int
    committed: int | None
    high_watermark: int
    lag: int = Field(description="Messages not yet committed by the pipeline's consumer group.")


class PlatformProgress(BaseModel):
    platform: str
    last_sensing_time: datetime
    last_finished_at: datetime
    scenes: int


class DependencyPause(BaseModel):
    dependency: str = Field(description="triton, ray or postgis.")
    down_s: float = Field(description="How long the dependency has been down (s), as seen by the worker.")
    reason: str


class ConsumptionState(BaseModel):
    paused: bool
    reason: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


class ProcessHealth(BaseModel):
    process: Literal["worker", "dispatcher", "api"]
    up: bool = Field(description="It answered its /metrics (the API: this process, answering now).")
    url: str | None = Field(description="The /metrics probed (null for the API answering this request).")
    since: datetime | None = Field(description="When the process started (process_start_time_seconds).")
    version: str | None = Field(description="terrawatch version (terrawatch_build_info).")
    last_seen: datetime | None = Field(description="When it last answered: now if up, null if it did not answer.")
    detail: str


class PipelineStatus(BaseModel):
    consumer_group: str
    topic: str
    consumer_lag: list[PartitionLag]
    total_lag: int
    scenes_in_flight: float | None = Field(
        description="From the worker's /metrics (terrawatch_scenes_in_flight); null = the worker's /metrics did not "
                    "answer (worker down, starting, or TERRAWATCH_WORKER_METRICS_URL wrong), not zero: see "
                    "processes[worker].")
    last_processed: list[PlatformProgress]
    dlq_size: int = Field(description="Pending DLQ entries (= terrawatch_dlq_depth).")
    dlq: dict[str, int] = Field(description="Retained DLQ records by state: pending, redriven, purged, retained.")
    consumption_paused: bool = Field(description="Paused by an operator (POST /ops/consumption/pause).")
    consumption: ConsumptionState = Field(description="The pause flag with its reason, who set it and when.")
    processes: list[ProcessHealth] = Field(description="Health of the worker, the dispatcher and the API.")
    paused_by_dependency: list[DependencyPause] | None = Field(
        description="Dependencies the worker paused consumption for by itself (it resumes when they are "
                    "ready); null if the worker's /metrics is unreachable.")
    outbox: dict[str, int] = Field(description="Webhook deliveries by status.")


class Published(BaseModel):
    published: list[str]
    topic: str


class Replayed(Published):
    outcome: Literal["new", "duplicate", "unknown"] = Field(
        description="new: the worker will store a new run (no run yet, or a model version changed); duplicate: "
                    "every stored run has the served model version, the worker skips it; unknown: Triton did not "
                    "answer.")
    note: str = Field(description="Why, in words.")
    existing_runs: list[str] = Field(description="hazard@model:version of the runs already stored.")


class ReprocessIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scene_ids: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None, min_length=1, max_length=500, description="Stored scenes to process again (or bbox).")
    bbox: list[float] | None = Field(default=None, min_length=4, max_length=4,
                                     description="west, south, east, north (lon/lat): the stored scenes meeting it.")
    since: AwareDatetime | None = Field(default=None, description="With bbox: scenes sensed at or after this time.")
    until: AwareDatetime | None = Field(default=None, description="With bbox: scenes sensed before this time.")
    dry_run: bool = Field(default=False, description="List the scenes and the run tag; publish nothing.")


class ReprocessScene(BaseModel):
    id: str
    sensing_time: datetime
    runs: list[str] = Field(description="hazard@model:version of the runs already stored.")


class Reprocessed(BaseModel):
    run: str = Field(description="The new run's tag (rp-<UTC time>-<hex>); its runs are stored as model:version#tag.")
    outcome: Literal["new", "dry_run", "none"] = Field(
        description="new: published, the worker processes each scene again; dry_run: nothing published; none: no "
                    "stored scene matched (a no-op).")
    note: str
    scenes: list[ReprocessScene]
    missing: list[str] = Field(description="scene_ids that are not stored.")
    topic: str
    dry_run: bool


class DlqSourceOut(BaseModel):
    topic: str
    partition: int
    offset: int
    key: str


class DlqEntry(BaseModel):
    id: str = Field(description="partition/offset in the DLQ topic.")
    partition: int
    offset: int
    state: Literal["pending", "redriven", "purged"]
    reason: str
    error_code: str
    kind: Literal["permanent", "transient"] = Field(
        description="permanent: the event itself is bad; transient: a dependency failed through every attempt.")
    attempts: int
    failed_at: str | None
    source: DlqSourceOut | None
    redriven_at: str | None
    redriven_by: str | None
    redrives: int
    purged_at: str | None
    purged_by: str | None
    payload_encoding: Literal["utf-8", "base64"]
    payload: str | None
    predecessor: str | None = Field(
        default=None, description="The earlier DLQ entry of the same event that was re-driven and came back here "
                                  "(GET /ops/dlq/{partition}/{offset} only).")
    history: list[dict[str, Any]] = Field(
        default_factory=list, description="Earlier re-driven entries of the same event, oldest first (id, "
                                          "error_code, kind, redriven_at, redriven_by; single-entry view only).")


class DlqSelect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[str, Field(pattern=DLQ_ID)]] | None = Field(
        default=None, min_length=1, max_length=dlq_svc.LIMIT,
        description="Entries (partition/offset); omit with all=true (the oldest 1000 pending ones).")
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self):
        if self.all == (self.ids is not None):
            raise ValueError("give either ids or all=true")
        return self


class RedriveIn(DlqSelect):
    force: bool = Field(default=False, description="Also re-drive permanent entries (refused with 409 otherwise; "
                                                   "with all=true they are skipped as 'permanent').")


class SkippedEntry(BaseModel):
    id: str
    state: str = Field(description="Why it was skipped: its state (redriven, purged), no_payload, or permanent "
                                   "(re-drive all without force).")


class Redriven(BaseModel):
    redriven: list[str]
    missing: list[str]
    skipped: list[SkippedEntry]
    topic: str
    at: str
    by: str
    remaining: int | None = Field(description="Pending DLQ entries left (null if they could not be counted).")


class Purged(BaseModel):
    purged: list[str]
    missing: list[str]
    skipped: list[SkippedEntry]
    at: str
    by: str
    remaining: int | None = Field(description="Pending DLQ entries left (null if they could not be counted).")


class PauseIn(BaseModel):
    reason: str = Field(default="", max_length=500)


class BackfillIn(BaseModel):
    folder: str = Field(min_length=1, max_length=1024,
                        description="Absolute folder of GeoTIFFs / STAC Item JSON files on the API host.")
    recursive: bool = False
    sensing_time: AwareDatetime | None = Field(default=None, description="Sensing time for files without one.")
    platform: str | None = Field(default=None, max_length=32)
    dry_run: bool = False


class Skipped(BaseModel):
    path: str
    reason: str


class BackfillOut(BaseModel):
    published: list[str] = Field(description="Scene ids published (with dry_run: the ids it would publish).")
    skipped: list[Skipped]
    topic: str
    dry_run: bool


class ModelVersion(BaseModel):
    name: str | None
    version: str | None
    state: str | None
    reason: str | None


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str | None
    details: dict[str, Any]
    client: str | None


def only_params(request: Request, *allowed: str) -> None:
    """Refuse (400) query parameters the route does not read, naming the ones it does: never ignore one."""
    unknown = sorted({k for k in request.query_params.keys()} - set(allowed))
    if unknown:
        raise BadRequest(f"unknown query parameter(s) {', '.join(repr(k[:64]) for k in unknown[:10])}; "
                         f"this endpoint takes {', '.join(allowed) or 'none'}")


def ops_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/ops", tags=["ops"])
    s = deps.settings

    @router.get("/livez", response_model=Health, summary="Liveness: the API process answers.")
    def livez() -> dict:
        return {"status": "ok"}

    @router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}},
                summary="Readiness of Kafka, PostGIS, Triton and Ray, each reported individually (503 if any fails). "
                        "Anonymous callers see ok/unavailable per check; a viewer key also sees the details "
                        "(versions, addresses, session names).")
    def readyz(who: Principal = Depends(deps.optional_viewer)) -> JSONResponse:
        checks = deps.runbook.status.readiness()
        ok = all(c.ok for c in checks.values())
        out = {k: c.as_dict() for k, c in checks.items()}
        if who is ANONYMOUS_VIEWER:  # no versions or internal names for strangers (issue 25 finding 7)
            out = {k: {**v, "detail": "ok" if v["ok"] else "unavailable"} for k, v in out.items()}
        body = {"status": "ready" if ok else "not_ready", "checks": out}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/status", response_model=PipelineStatus, summary="Consumer lag, scenes in flight, progress, DLQ.")
    def status(_: Principal = Depends(deps.viewer)) -> dict:
        return deps.runbook.status.status()

    @router.post("/scenes/{scene_id}/replay", response_model=Replayed, status_code=202,
                 summary="Republish the scene's stored STAC Item to the scenes topic; says whether the run will be "
                         "new or a duplicate.")
    def replay(scene_id: SceneId, request: Request, who: Principal = Depends(deps.operator)) -> dict:
        out = deps.runbook.streams.replay(scene_id, _audit(who, request, "scene.replay"))
        return {**out, "published": [out["published"]]}

    @router.post("/reprocess", response_model=Reprocessed, status_code=202,
                 summary="Process stored scenes again (scene_ids, or bbox with since/until) under a new run version, "
                         "against the current reference layers, history, thresholds and models; alerts the new run "
                         "no longer supports are updated or withdrawn (lifecycle events, webhooks).")
    def reprocess(body: ReprocessIn, request: Request, who: Principal = Depends(deps.operator)) -> dict:
        only_params(request)
        return deps.runbook.reprocess.reprocess(
            scene_ids=body.scene_ids,
            bbox=tuple(body.bbox) if body.bbox else None, since=body.since, until=body.until,
            dry_run=body.dry_run, audit=_audit(who, request, "scene.reprocess"))

    def _audit(who: Principal, request: Request, action: str):
        return deps.auditor(who, request, action)

    def _ids(body: DlqSelect) -> list[str] | None:
        return None if body.all else body.ids

    @router.get("/dlq", response_model=list[DlqEntry], summary="Dead-lettered events (pending by default).")
    def dlq(request: Request, limit: Annotated[int, Query(ge=1, le=dlq_svc.LIMIT)] = 100,
            state: Annotated[Literal["pending", "redriven", "purged", "all"], Query()] = "pending",
            _: Principal = Depends(deps.operator)) -> list[dict]:
        only_params(request, "limit", "state")
        return [e.as_dict() for e in deps.runbook.dlq.list_entries(state, limit)]

    @router.get("/dlq/{partition}/{offset}", response_model=DlqEntry, summary="One DLQ entry with its state.")
    def dlq_entry(partition: Annotated[int, Path(ge=0, le=999_999)], offset: Annotated[int, Path(ge=0, le=2**63 - 1)],
                  _: Principal = Depends(deps.operator)) -> dict:
        return deps.runbook.dlq.get_entry(f"{partition}/{offset}").as_dict()

    @router.post("/dlq/redrive", response_model=Redriven, status_code=202,
                 summary="Republish the original payload of pending DLQ entries (all, or by partition/offset id) "
                         "and mark them redriven; permanent entries only with force (409 otherwise).")
    def redrive(body: RedriveIn, request: Request, who: Principal = Depends(deps.operator)) -> dict:
        return deps.runbook.dlq.redrive(_ids(body), who.actor, _audit(who, request, "dlq.redrive"), force=body.force)

    @router.post("/dlq/purge", response_model=Purged,
                 summary="Mark pending DLQ entries purged (no longer listed by default nor counted in the depth).")
    def purge(body: DlqSelect, request: Request, who: Principal = Depends(deps.operator)) -> dict:
        return deps.runbook.dlq.purge(_ids(body), who.actor, _audit(who, request, "dlq.purge"))

    @router.get("/consumption", response_model=ConsumptionState, summary="Whether the worker consumes scenes.")
    def consumption(_: Principal = Depends(deps.viewer)) -> dict:
        return deps.runbook.consumption.show()

    def _set_paused(paused: bool, reason: str, who: Principal, request: Request) -> dict:
        action = "consumption.pause" if paused else "consumption.resume"
        return deps.runbook.consumption.set(paused, reason, who.actor, _audit(who, request, action))

    @router.post("/consumption/pause", response_model=ConsumptionState,
                 summary="Pause the worker's consumption (it checks the flag every few seconds).")
    def pause(request: Request, body: PauseIn | None = None, who: Principal = Depends(deps.operator)) -> dict:
        return _set_paused(True, (body or PauseIn()).reason, who, request)

    @router.post("/consumption/resume", response_model=ConsumptionState, summary="Resume consumption.")
    def resume(request: Request, body: PauseIn | None = None, who: Principal = Depends(deps.operator)) -> dict:
        return _set_paused(False, (body or PauseIn()).reason, who, request)

    @router.post("/backfill", response_model=BackfillOut, status_code=202,
                 summary="Publish one scene event per GeoTIFF or STAC Item file in a folder on the API host "
                         "(under TERRAWATCH_API_BACKFILL_ROOTS).")
    def backfill(body: BackfillIn, request: Request, who: Principal = Depends(deps.operator)) -> dict:
        streams = deps.runbook.streams
        report = streams.backfill_folder(
            body.folder, streams.backfill_roots(), recursive=body.recursive, sensing_time=body.sensing_time,
            platform=body.platform, dry_run=body.dry_run, audit=_audit(who, request, "scene.backfill"))
        return {"published": report.published, "topic": s.scenes_topic, "dry_run": body.dry_run,
                "skipped": [{"path": k["source"], "reason": k["reason"]} for k in report.skipped]}

    @router.get("/models", response_model=list[ModelVersion], summary="Model versions in Triton's repository.")
    async def models(_: Principal = Depends(deps.viewer)) -> list[dict]:
        return await run_in_threadpool(deps.runbook.status.models)

    @router.get("/audit", response_model=list[AuditEntry],
                summary="The audit log, newest first; filters: action (one of the recorded actions), since, until "
                        "(ISO 8601 with offset; since inclusive, until exclusive), limit. Other parameters: 400.")
    def audit(request: Request,
              action: Annotated[str | None, Query(max_length=64, description="One of: "
                                                  + ", ".join(audit_log.ACTIONS))] = None,
              since: Annotated[AwareDatetime | None, Query(description="Rows at or after this time.")] = None,
              until: Annotated[AwareDatetime | None, Query(description="Rows before this time.")] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              _: Principal = Depends(deps.operator)) -> list[dict]:
        only_params(request, "action", "since", "until", "limit")
        if action is not None and action not in audit_log.ACTIONS:
            raise BadRequest(f"unknown action {action[:64]!r}; valid actions: {', '.join(audit_log.ACTIONS)}")
        if since is not None and until is not None and since >= until:
            raise BadRequest("since must be before until")
        return audit_log.recent(deps.engine, action, limit, since=since, until=until)

    return router

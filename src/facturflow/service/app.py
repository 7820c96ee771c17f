"""The routes of `facturflow serve` (Starlette), their error answers and the access log.

Every answer that is not a success is JSON: {"error": class, "message": the CLI's wording,
"exit_code": what the CLI would exit with}. Bad input is a 4xx; a 500 only ever means a bug
(logged with its traceback on the service's stderr, never sent to the caller).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import importlib
import json
import re
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__, exitcodes
from ..errors import (
    ArtefactError,
    EmptyInputError,
    FacturflowError,
    InputError,
    InputTooLargeError,
    UnknownRuleSetError,
)
from ..rules import RulePack, RuleSelection, parse_rule_sets
from ..validation.report import Report
from ..validation.verdict_cache import VerdictCache
from ..xmlsafe import DEFAULT_LIMITS, Limits
from .auth import bearer_ok
from .limits import ApiError, check_content_type, read_body
from .metrics import Metrics
from .workers import TIMEOUT_MARK, ConvertJob, Workers

# Routes anyone may call, token or not: probes (liveness, readiness) carry no data.
PUBLIC = frozenset({"/healthz", "/readyz"})
# Methods that keep their own metrics label; any other (a client may send any token) is "other",
# as any path but a route's is: a client must not be able to grow the metrics without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
VERDICT_HEADER = "X-Facturflow-Verdict"
CACHED_HEADER = "X-Facturflow-Cached"

# Every route, method and the statuses it answers with (besides 500, a bug, and 404/405): the
# OpenAPI document (service/openapi.json) must say the same, which tests/service checks.
_INPUT = (200, 400, 401, 408, 413, 415, 422, 500, 503, 504)
RESPONSES: dict[str, dict[str, tuple[int, ...]]] = {
    "/v1/validate": {"POST": tuple(sorted((*_INPUT, 406)))},
    "/v1/detect": {"POST": _INPUT},
    "/v1/read": {"POST": _INPUT},
    "/v1/convert": {"POST": _INPUT},
    "/v1/artefacts": {"GET": (200, 400, 401, 500)},
    "/healthz": {"GET": (200,)},
    "/readyz": {"GET": (200, 503)},
    "/metrics": {"GET": (200, 401)},
    "/openapi.json": {"GET": (200, 401)},
}

# The errors of an input that cannot be read (facturflow.errors): a validation's "unreadable".
_INPUT_ERRORS = frozenset({
    "InputError", "EmptyInputError", "InputTooLargeError", "MalformedXMLError",
    "MalformedPDFError", "NoInvoiceInPDFError", "NotAnInvoiceError",
})

# Accept → report format, in order of preference when the client has none.
REPORT_TYPES: tuple[tuple[str, str], ...] = (
    ("application/json", "json"),
    ("application/sarif+json", "sarif"),
    ("application/xml", "junit"),
    ("text/xml", "junit"),
    ("text/html", "html"),
)


@dataclass
class Settings:
    """How the service runs (the `serve` command's options)."""

    jobs: int = 1
    queue: int = 64
    request_timeout: float = 30.0
    body_timeout: float = 30.0
    limits: Limits = DEFAULT_LIMITS
    packs: Sequence[RulePack] = ()
    token: str | None = None
    max_worker_rss_mb: float | None = 768.0
    cache: VerdictCache | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def log(event: str, **fields: Any) -> None:
    """One JSON line on stderr (the service's log: requests, start, stop, bugs)."""
    line = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "event": event}
    line.update(fields)
    # ASCII: a path may carry U+2028 or U+0085, which line splitters other than JSON lines'
    # (str.splitlines, some log shippers) take for line breaks, so one line could pass for two.
    sys.stderr.write(json.dumps(line, ensure_ascii=True) + "\n")
    sys.stderr.flush()


def error_response(error: ApiError, verdict: str | None = None) -> JSONResponse:
    headers = dict(error.headers)
    if verdict is not None:
        headers[VERDICT_HEADER] = verdict
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _input_error(exc: InputError) -> ApiError:
    status = 400 if isinstance(exc, EmptyInputError) else 413 if isinstance(
        exc, InputTooLargeError) else 422
    return ApiError(status, type(exc).__name__, exc.message, exitcodes.USAGE)


def _query(request: Request, allowed: set[str]) -> dict[str, str]:
    params = request.query_params
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ApiError(
            400, "BadRequest",
            f"unknown query parameter {unknown[0]!r}; this endpoint takes "
            f"{', '.join(sorted(allowed)) or 'none'}",
        )
    given = [key for key, _ in params.multi_items()]
    repeated = sorted({key for key in given if given.count(key) > 1})
    if repeated:  # which one would count is a guess: rules=xsd&rules=en16931 means both?
        raise ApiError(
            400, "BadRequest",
            f"query parameter {repeated[0]!r} given {given.count(repeated[0])} times; give it "
            "once (rules takes a comma-separated list)",
        )
    return {key: params[key] for key in params}


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "false").lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ApiError(400, "BadRequest", f"{name}={value!r}: give true or false")


def _choice(query: Mapping[str, str], name: str, choices: Sequence[str]) -> str | None:
    value = query.get(name)
    if value is not None and value not in choices:
        raise ApiError(
            400, "BadRequest", f"{name}={value!r}: choose one of {', '.join(choices)}"
        )
    return value


def selection_from(query: Mapping[str, str], packs: Sequence[RulePack]) -> RuleSelection:
    """rules, french_rules and as_of as in `validate --rules/--french-rules/--as-of`."""
    from ..rules_calendar import RulesConfigError

    rules = query.get("rules")
    french = _choice(query, "french_rules", ("fatal", "warning"))
    as_of = query.get("as_of")
    if french is not None and as_of is not None:
        raise ApiError(400, "BadRequest", "french_rules and as_of: give one or the other")
    try:
        return parse_rule_sets(rules, packs, french_build=french, as_of=as_of)
    except UnknownRuleSetError as exc:
        raise ApiError(400, type(exc).__name__, f"rules {rules!r}: {exc.message}") from None
    except (RulesConfigError, ArtefactError) as exc:
        raise ApiError(500, type(exc).__name__, exc.message, exitcodes.CONFIG) from None
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"as_of {as_of!r}: {exc}") from None


class _Selections:
    """Rule selections by query, kept a minute: parsing one reads the rules calendar (a file),
    which the CLI does once per run; the service need not on every request."""

    TTL = 60.0

    def __init__(self, packs: Sequence[RulePack]) -> None:
        self.packs = packs
        self._kept: dict[tuple[str | None, ...], tuple[float, RuleSelection]] = {}

    def get(self, query: Mapping[str, str]) -> RuleSelection:
        key = (query.get("rules"), query.get("french_rules"), query.get("as_of"),
               dt.date.today().isoformat())
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and now - kept[0] < self.TTL:
            return kept[1]
        selection = selection_from(query, self.packs)  # a bad one raises: never kept
        if len(self._kept) > 256:
            self._kept.clear()
        self._kept[key] = (now, selection)
        return selection


def negotiate(accept: str | None) -> tuple[str, str]:
    """(report format, media type) for an Accept header; 406 when it accepts none of them."""
    if not accept or not accept.strip():
        return "json", "application/json"
    ranges: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranges.append((-quality, position, media.lower()))
    for _, _, media in sorted(ranges):
        for offered, fmt in REPORT_TYPES:
            kind, _, _ = offered.partition("/")
            if media in (offered, "*/*", f"{kind}/*"):
                return fmt, offered
    raise ApiError(
        406, "NotAcceptable",
        f"cannot answer with {accept!r}; reports are "
        + ", ".join(media for media, _ in REPORT_TYPES),
    )


def _name(query: Mapping[str, str], default: str) -> str:
    """The input's name in reports (`name=`), never a path of the service's."""
    name = query.get("name", default)
    if not name or len(name) > 255 or re.search(r"[\x00-\x1f/\\]", name):
        raise ApiError(400, "BadRequest", "name: a file name of 1 to 255 characters, no '/'")
    return name


def _timed_out(report: Report) -> str | None:
    if report.error_type != "ValidationAborted":
        return None
    for finding in report.findings:
        if TIMEOUT_MARK in finding.message:
            return finding.message
    return None


def create_app(settings: Settings, workers: Workers | None = None) -> Starlette:
    """The service as an ASGI application (the workers start with it and stop with it)."""
    metrics = Metrics()
    limits = settings.limits
    if workers is None:
        workers = Workers(
            packs=settings.packs, jobs=settings.jobs, timeout=settings.request_timeout,
            limits=limits, queue=settings.queue, max_rss_mb=settings.max_worker_rss_mb,
            cache=settings.cache,
        )
    pool = workers
    metrics.gauges.update(
        facturflow_queue_depth=("Requests waiting for a worker.", pool.waiting),
        facturflow_in_flight=("Requests being worked on.", pool.in_flight),
        facturflow_ready=("1 once the workers have compiled their stylesheets.",
                          lambda: float(pool.ready.is_set())),
    )
    metrics.counters.update(
        facturflow_worker_restarts_total=(
            "Worker processes started to replace another (time limit, crash, memory).",
            pool.restarts,
        ),
    )
    cache = pool.cache
    if cache is not None:
        stats = cache.stats
        metrics.counters.update(
            facturflow_verdict_cache_hits_total=(
                "Validations answered from the verdict cache (no worker).",
                lambda: stats["hits"]),
            facturflow_verdict_cache_misses_total=(
                "Validations looked up in the verdict cache and not found (or not trusted).",
                lambda: stats["misses"]),
        )
    artefacts_cache: dict[str, Any] = {}
    selections = _Selections(settings.packs)
    timeout = settings.request_timeout

    async def in_thread(function: Callable[[], Any]) -> Any:
        """Quick lxml work on a thread, bounded by the request time limit (the thread itself
        cannot be stopped: detect and read are bounded by the input limits)."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(function), timeout)
        except TimeoutError:
            raise ApiError(504, "Timeout", f"did not finish within {timeout:g} s",
                           exitcodes.INVALID) from None

    # Bodies held at once (read, or waiting for or on a worker): at most the queue and two per
    # worker, so that memory stays under (queue + 2 × jobs) × max_bytes whatever the number of
    # connections; one more gets the queue's 503 before its body is read.
    holding = 0
    most = settings.queue + 2 * settings.jobs

    @contextlib.asynccontextmanager
    async def admitted() -> AsyncIterator[None]:
        nonlocal holding
        if holding >= most:
            raise ApiError(503, "QueueFull", f"{holding} requests are already being handled "
                           f"(the limit is {most}); retry later", exitcodes.SERVICE,
                           {"Retry-After": "1"})
        holding += 1
        try:
            yield
        finally:
            holding -= 1

    async def body_of(request: Request) -> bytes:
        check_content_type(request)
        data = await read_body(request, limits.max_bytes, settings.body_timeout)
        if not data.strip():
            raise ApiError(400, "EmptyInputError", "the input is empty", exitcodes.USAGE)
        return data

    async def validate(request: Request) -> Response:
        async with admitted():
            return await _validate(request)

    async def _validate(request: Request) -> Response:
        query = _query(request, {"rules", "french_rules", "as_of", "lang", "name"})
        fmt, media = negotiate(request.headers.get("accept"))
        lang = _choice(query, "lang", ("en", "fr")) or "en"
        name = _name(query, "invoice")
        selection = selections.get(query)
        data = await body_of(request)
        report = None
        if pool.cache is not None:  # a hit is answered here, never queued for a worker
            report = await asyncio.to_thread(pool.cached, data, selection, name)
        if report is None:
            path = pool.scratch(data)
            try:
                report = await asyncio.wrap_future(pool.validate(path, selection))
            finally:
                path.unlink(missing_ok=True)
        report = dataclasses.replace(report, path=name)
        if report.error is not None:
            metrics.verdict("unreadable")
            status = {"EmptyInputError": 400, "InputTooLargeError": 413}.get(
                report.error_type or "", 422)
            error = ApiError(status, report.error_type or "InputError", report.error)
            return error_response(error, "unreadable")
        overran = _timed_out(report)
        if overran is not None:
            metrics.verdict("timeout")
            return error_response(
                ApiError(504, "Timeout", overran, exitcodes.INVALID), "timeout")
        verdict = "valid" if report.ok else "invalid"
        metrics.verdict(verdict)
        from ..reports import render
        from ..reports.json import as_document

        if fmt == "json":
            # The CLI's document, without its two-space indent: json's C encoder does not
            # indent, and the pure-Python one took 0.6 ms of the event loop per report (a
            # third of the service's own CPU per request); a program reads this one.
            body = json.dumps(as_document([report]), ensure_ascii=False, separators=(",", ":"))
        elif fmt == "html":  # a page: rendered aside
            body = await asyncio.to_thread(render, [report], fmt, lang=lang)
        else:
            body = render([report], fmt, lang=lang)
        charset = "" if media == "application/json" else "; charset=utf-8"
        headers = {VERDICT_HEADER: verdict, CACHED_HEADER: "true" if report.cached else "false"}
        return Response(body, media_type=media + charset, headers=headers)

    async def detect(request: Request) -> Response:
        async with admitted():
            return await _detect(request)

    async def _detect(request: Request) -> Response:
        from ..detection import detect_bytes

        query = _query(request, {"name"})
        name = _name(query, "invoice")
        data = await body_of(request)
        try:
            document = await in_thread(
                lambda: detect_bytes(data, name=name, limits=limits, lifecycle=True))
        except InputError as exc:
            raise _input_error(exc) from None
        answer = document.as_dict()
        return JSONResponse({**answer, "warnings": list(document.warnings)})

    async def read(request: Request) -> Response:
        async with admitted():
            return await _read(request)

    async def _read(request: Request) -> Response:
        from ..detection import detect_bytes
        from ..reading import read_with_mapping

        query = _query(request, {"name", "no_code_check"})
        name = _name(query, "invoice")
        check_codes = not _flag(query, "no_code_check")
        data = await body_of(request)

        def work() -> str:
            document = detect_bytes(data, name=name, limits=limits)
            invoice, _ = read_with_mapping(document, check_codes=check_codes)
            return invoice.to_json()

        try:
            text = await in_thread(work)
        except InputError as exc:
            raise _input_error(exc) from None
        return Response(text, media_type="application/json")

    async def convert(request: Request) -> Response:
        async with admitted():
            return await _convert(request)

    async def _convert(request: Request) -> Response:
        query = _query(request, {"to", "profile", "lang", "lossy", "rules", "french_rules",
                                 "as_of", "name"})
        if "to" not in query:
            raise ApiError(400, "BadRequest", "to: give the target, facturx, cii or ubl")
        to = _choice(query, "to", ("facturx", "cii", "ubl")) or "facturx"
        profile = _choice(query, "profile", ("en16931", "extended-ctc-fr"))
        lang = _choice(query, "lang", ("fr", "en")) or "fr"
        lossy = _flag(query, "lossy")
        selection_from(query, ())  # a bad rules/as_of is a 400 before any work
        data = await body_of(request)
        path = pool.scratch(data)
        job = ConvertJob(
            str(path), to, profile, lang, lossy, query.get("rules"), query.get("french_rules"),
            query.get("as_of"), limits.max_bytes, limits.max_depth, limits.max_nodes,
        )
        try:
            outcome = await asyncio.wrap_future(pool.convert(job))
        finally:
            path.unlink(missing_ok=True)
        if isinstance(outcome, Report):  # the worker overran or died
            overran = _timed_out(outcome)
            if overran is not None:
                raise ApiError(504, "Timeout", overran, exitcodes.INVALID)
            message = outcome.findings[0].message if outcome.findings else "conversion failed"
            raise ApiError(422, "ValidationAborted", message, exitcodes.INVALID)
        if outcome[0] == "failed":
            _, error, message, code = outcome
            status = 422 if code == exitcodes.INVALID else {
                "EmptyInputError": 400, "InputTooLargeError": 413, "ValueError": 400,
                "UnknownRuleSetError": 400, "EmptyRuleSelectionError": 400,
            }.get(error, 422)
            raise ApiError(status, error, message, code)
        _, output, media, dropped, warnings = outcome
        headers = {}
        if dropped:
            headers["X-Facturflow-Dropped-Terms"] = ",".join(dropped)
        if warnings:
            headers["X-Facturflow-Warnings"] = json.dumps(list(warnings))  # ASCII-escaped
        return Response(output, media_type=media, headers=headers)

    async def artefacts(request: Request) -> Response:
        _query(request, set())
        if not artefacts_cache:
            def work() -> dict[str, Any]:
                from ..artefacts import listing, verify
                from ..rules import ALIASES, BUILTIN_RULE_SETS

                return {
                    "facturflow": __version__,
                    "rule_sets": list(BUILTIN_RULE_SETS),
                    "aliases": {name: list(sets) for name, sets in ALIASES.items()},
                    "rule_packs": [pack.name for pack in settings.packs],
                    "artefacts": listing(),
                    "problems": verify(),
                }

            artefacts_cache.update(await asyncio.to_thread(work))
        return JSONResponse(artefacts_cache)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "facturflow": __version__})

    async def readyz(request: Request) -> Response:
        if pool.ready.is_set():
            return JSONResponse({"status": "ready", "workers": settings.jobs})
        raise ApiError(503, "NotReady", "the workers are compiling their stylesheets",
                       exitcodes.SERVICE, {"Retry-After": "1"})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(request: Request) -> Response:
        return Response(openapi_text(), media_type="application/json")

    def guarded(endpoint: Callable[[Request], Awaitable[Response]]) -> Any:
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except ApiError as exc:
                verdict = None
                if endpoint is validate and exc.error in _INPUT_ERRORS:
                    verdict = "unreadable"  # refused before a worker saw it (empty, too large)
                    metrics.verdict(verdict)
                return error_response(exc, verdict)
            except ClientDisconnect:  # gone before its body was sent: nobody to answer
                return error_response(ApiError(
                    400, "BadRequest", "the client closed the connection before the whole body"))
            except FacturflowError as exc:  # a library refusal not mapped above: still input
                return error_response(ApiError(422, type(exc).__name__, exc.message))
            except Exception:
                return internal_error(metrics)

        run.__name__ = endpoint.__name__
        return run

    routes = [
        Route("/v1/validate", guarded(validate), methods=["POST"]),
        Route("/v1/detect", guarded(detect), methods=["POST"]),
        Route("/v1/read", guarded(read), methods=["POST"]),
        Route("/v1/convert", guarded(convert), methods=["POST"]),
        Route("/v1/artefacts", guarded(artefacts), methods=["GET"]),
        Route("/healthz", guarded(healthz), methods=["GET"]),
        Route("/readyz", guarded(readyz), methods=["GET"]),
        Route("/metrics", guarded(metrics_endpoint), methods=["GET"]),
        Route("/openapi.json", guarded(openapi), methods=["GET"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        names = {404: "NotFound", 405: "MethodNotAllowed"}
        error = ApiError(exc.status_code, names.get(exc.status_code, "HTTPError"),
                         f"{request.method} {request.url.path}: {exc.detail}",
                         exitcodes.USAGE, dict(exc.headers or {}))
        return error_response(error)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(pool.start)
        # The report writers, imported now rather than on the first request (a few hundred ms).
        await asyncio.to_thread(importlib.import_module, "facturflow.reports")
        try:
            yield
        finally:
            await asyncio.to_thread(pool.close)

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error},
                    lifespan=lifespan)
    app.state.metrics = metrics
    app.state.workers = pool
    templates = {route.path for route in routes}
    app.add_middleware(Front, settings=settings, metrics=metrics, templates=templates)
    return app


def internal_error(metrics: Metrics) -> Response:
    """A bug: logged with its traceback here, answered without it."""
    metrics.internal_error()
    log("internal_error", traceback=traceback.format_exc())
    error = ApiError(500, "InternalError", "internal error; the service log has the details",
                     exitcodes.SERVICE)
    return error_response(error)


class Front:
    """Outermost: the bearer token, then the access log line and the request metrics."""

    def __init__(
        self, app: ASGIApp, settings: Settings, metrics: Metrics, templates: set[str]
    ) -> None:
        self.app, self.settings, self.metrics, self.templates = app, settings, metrics, templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        endpoint = path if path in self.templates else "other"
        state: dict[str, Any] = {"status": 0, "out": 0, "in": 0, "verdict": None}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["in"] += len(message.get("body", b""))
            return message

        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                for key, value in message.get("headers", []):
                    if key.lower() == VERDICT_HEADER.lower().encode():
                        state["verdict"] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                state["out"] += len(message.get("body", b""))
            await send(message)

        try:
            token = self.settings.token
            if token is not None and path not in PUBLIC:
                headers = dict(scope.get("headers", []))
                header = headers.get(b"authorization")
                if not bearer_ok(header.decode("latin-1") if header else None, token):
                    error = ApiError(
                        401, "Unauthorized",
                        "this service needs 'Authorization: Bearer <token>' (the token in "
                        "FACTURFLOW_SERVE_TOKEN where the service runs)",
                        exitcodes.CONFIG, {"WWW-Authenticate": 'Bearer realm="facturflow"'},
                    )
                    await error_response(error)(scope, counting_receive, watching_send)
                    return
            try:
                await self.app(scope, counting_receive, watching_send)
            except Exception:
                if state["status"]:
                    self.metrics.internal_error()
                    log("internal_error", traceback=traceback.format_exc())
                else:
                    await internal_error(self.metrics)(scope, counting_receive, watching_send)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.observe(endpoint, method, state["status"], seconds)
            # No query string (it may name files or carry secrets), no body, no headers.
            log("request", method=scope["method"], path=path, status=state["status"],
                duration_ms=round(seconds * 1000, 2), bytes_in=state["in"],
                bytes_out=state["out"], verdict=state["verdict"])


def openapi_text() -> str:
    """The OpenAPI document kept beside this module (service/openapi.json)."""
    return resources.files(__package__).joinpath("openapi.json").read_text(encoding="utf-8")

"""The bridge between requests and the resident worker processes.

Validation runs on BatchValidator (facturflow.validation), so the service validates exactly as
`facturflow validate` and `BatchValidator` do. The service keeps `jobs` lanes per rule
selection: each lane is a BatchValidator with one worker process and a thread that hands it the
requests waiting for that lane as one batch (a worker's files run one after the other, each
answered as soon as it is done). One worker per lane rather than one pool of `jobs` workers: a
pool runs one batch at a time, so an invoice that takes long (up to the request time limit)
would hold back every request behind it, and the other workers would sit idle at the end of
each batch; with a worker per lane, only the requests already queued on a stuck lane wait.

A request goes to the least loaded lane, preferring (within AFFINITY_SLACK requests) a lane of
its syntax: CII to the even lanes, UBL to the odd ones, as BatchValidator keeps each worker to
one syntax where it can, so that a worker mostly holds one syntax's stylesheets. The
BatchValidators' own affinity is off (a one-worker pool would replace its worker at each change
of syntax): a worker given both syntaxes holds both sets (about 550 MB at most, see
validation/pool.py).

A request over the time limit is stopped by the pool (its worker killed and replaced); the
report says so (LAYER-FAILED, "did not finish within"), which the app answers with 504.

Conversion runs on a WorkerPool of its own (one worker, started on first use) for the same time
limit; detection and reading are quick lxml work, done on a thread of the service.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from ..rules import RulePack, RuleSelection, parse_rule_sets
from ..validation import BatchValidator, syntax_family
from ..validation import pool as worker_pool
from ..validation.report import Report
from ..validation.verdict_cache import VerdictCache
from ..xmlsafe import Limits
from .limits import ApiError

# Distinct rule selections kept warm at once (the default's lanes count as one); a further one
# replaces the least recently used idle one.
MAX_SELECTIONS = 4
TIMEOUT_MARK = "did not finish within"
_FAMILIES = ("cii", "ubl")  # validate.syntax_family's guesses
AFFINITY_SLACK = 2
PRUNE_EVERY = 500  # verdict cache misses between two prunes of its folder


class Lane:
    """A queue, a thread and whatever runs a batch of names (a one-worker BatchValidator)."""

    def __init__(
        self,
        run_batch: Callable[[list[str]], Iterator[Any]],
        close: Callable[[], None],
        label: str,
    ) -> None:
        self._run_batch, self._close = run_batch, close
        self._pending: deque[tuple[str, concurrent.futures.Future[Any]]] = deque()
        self._cond = threading.Condition()
        self.busy = 0  # requests handed to the worker, not answered yet
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=label, daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return len(self._pending)

    @property
    def load(self) -> int:
        return len(self._pending) + self.busy

    def submit(self, name: str) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._cond:
            if self._closing:
                raise RuntimeError("lane closed")
            self._pending.append((name, future))
            self._cond.notify()
        return future

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    break
                batch = list(self._pending)
                self._pending.clear()
                self.busy = len(batch)
            answered = 0
            try:
                # Consumed to its end (not zipped short), so that the pool's run is over before
                # the next batch starts.
                for result in self._run_batch([name for name, _ in batch]):
                    batch[answered][1].set_result(result)
                    answered += 1
                    with self._cond:
                        self.busy -= 1
            except BaseException as exc:  # the pool broke: every request of the batch is told
                for _, future in batch[answered:]:
                    if not future.done():
                        future.set_exception(exc)
            finally:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(RuntimeError("the worker gave no answer"))
                with self._cond:
                    self.busy = 0
        self._close()

    def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()


def selection_key(selection: RuleSelection) -> str:
    """What tells two selections apart: names, how they were chosen, the French build."""
    french = selection.french.as_dict() if selection.french is not None else None
    return json.dumps(
        [list(selection), sorted(selection.explicit), sorted(selection.scoped), french]
    )


def warm_invoices(nonce: str = "1") -> list[bytes]:
    """A small French invoice in CII and in UBL, built in code: validating it compiles the
    stylesheets a typical invoice of either syntax needs (no fixture file is needed). `nonce`
    goes into its number, so that each start's are new to the verdict cache."""
    from ..model import Buyer, ElectronicAddress, Identifier, Line, PostalAddress, Seller, build
    from ..syntax import to_xml

    seller = Seller(
        name="Atelier Lumen SAS", vat_id="FR60732048152",
        legal_registration_id=Identifier(value="732048152", scheme="0002"),
        electronic_address=ElectronicAddress(value="732048152", scheme="0225"),
        postal_address=PostalAddress(city="Paris", post_code="75002", country_code="FR"),
    )
    buyer = Buyer(
        name="Client SA", vat_id="FR14987654324",
        legal_registration_id=Identifier(value="987654324", scheme="0002"),
        electronic_address=ElectronicAddress(value="987654324", scheme="0225"),
        postal_address=PostalAddress(city="Lyon", post_code="69002", country_code="FR"),
    )
    invoice = build(
        number=f"WARM-{nonce}", issue_date=dt.date(2026, 1, 31), due_date=dt.date(2026, 3, 2),
        seller=seller, buyer=buyer, business_process="S1",
        lines=[Line(item="Conseil", quantity=Decimal("1"), unit_price=Decimal("100"),
                    vat_rate=Decimal("20"))],
    )
    return [to_xml(invoice, "cii"), to_xml(invoice, "ubl")]


@dataclass(frozen=True)
class ConvertJob:
    """What a conversion request asks (sent to the conversion worker as JSON)."""

    path: str
    to: str
    profile: str | None
    lang: str
    lossy: bool
    rules: str | None
    french_rules: str | None
    as_of: str | None
    max_bytes: int
    max_depth: int
    max_nodes: int


def _convert_task(name: str) -> Any:
    """Run in the conversion worker: ("converted", data, media, dropped, warnings) or
    ("failed", error class, message, exit code)."""
    from .. import exitcodes
    from ..conversion import convert
    from ..detection import detect
    from ..errors import ConversionError, FacturflowError, InputError

    job = ConvertJob(**json.loads(name))
    limits = Limits(job.max_bytes, job.max_depth, job.max_nodes)
    try:
        document = detect(job.path, limits=limits)
        result = convert(
            document, to=job.to, profile=job.profile, lossy=job.lossy,  # type: ignore[arg-type]
            lang=job.lang, rules=job.rules, french_rules=job.french_rules,  # type: ignore[arg-type]
            as_of=job.as_of,
        )
    except InputError as exc:
        return ("failed", type(exc).__name__, exc.message, exitcodes.USAGE)
    except ConversionError as exc:
        return ("failed", type(exc).__name__, exc.message, exitcodes.INVALID)
    except FacturflowError as exc:
        return ("failed", type(exc).__name__, exc.message, exitcodes.INVALID)
    except ValueError as exc:  # a bad as_of reaches here
        return ("failed", "ValueError", str(exc), exitcodes.USAGE)
    media = "application/pdf" if job.to == "facturx" else "application/xml"
    return ("converted", result.data, media, result.dropped, result.warnings)


def _no_init() -> None:
    return None


class Workers:
    """Lanes of resident workers per rule selection, one conversion lane, and the queue bound."""

    def __init__(
        self,
        *,
        packs: Sequence[RulePack],
        jobs: int,
        timeout: float,
        limits: Limits,
        queue: int,
        max_rss_mb: float | None = worker_pool.DEFAULT_MAX_RSS_MB,
        cache: VerdictCache | None = None,
    ) -> None:
        self.packs, self.jobs, self.timeout, self.limits = list(packs), jobs, timeout, limits
        # The service looks a request up itself (a hit needs no worker); the lanes' validators
        # get a cache object of their own (same folder) so that their workers store what they
        # find, and so that `cache.stats` counts the service's lookups only, once each.
        self.cache = cache if cache is not None and cache.ready() else None
        self._lane_cache = (
            VerdictCache(self.cache.folder, max_bytes=self.cache.max_bytes)
            if self.cache is not None else None
        )
        self.queue_limit = queue
        self.max_rss_mb = max_rss_mb
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._lanes: OrderedDict[str, list[Lane]] = OrderedDict()
        self._validators: dict[str, list[BatchValidator]] = {}
        self._restarts_before = 0  # of lanes closed since
        self._convert: Lane | None = None
        self._convert_pool: worker_pool.WorkerPool | None = None
        self._folder = Path()  # made by start()
        self.default_key = selection_key(parse_rule_sets(None, self.packs))

    # -- lanes ------------------------------------------------------------------------------

    def _new_lanes(self, selection: RuleSelection) -> tuple[list[Lane], list[BatchValidator]]:
        lanes, validators = [], []
        for number in range(self.jobs):
            validator = BatchValidator(
                selection, rule_packs=self.packs, jobs=1, timeout=self.timeout,
                limits=self.limits, max_worker_rss_mb=self.max_rss_mb, syntax_affinity=False,
                cache=self._lane_cache,
            )
            validators.append(validator)
            lanes.append(Lane(validator.validate_many, validator.close, f"lane-{number}"))
        return lanes, validators

    def _lanes_for(self, selection: RuleSelection) -> list[Lane]:
        key = selection_key(selection)
        closing: list[Lane] = []
        with self._lock:
            if key in self._lanes:
                self._lanes.move_to_end(key)
                return self._lanes[key]
            if len(self._lanes) >= MAX_SELECTIONS:
                idle = [
                    k for k, lanes in self._lanes.items()
                    if k != self.default_key and all(lane.load == 0 for lane in lanes)
                ]
                if not idle:
                    raise ApiError(
                        503, "Busy",
                        f"{MAX_SELECTIONS} rule selections are in use; retry later",
                        4, {"Retry-After": "1"},
                    )
                closing = self._lanes.pop(idle[0])
                self._restarts_before += _restarts(self._validators.pop(idle[0]))
            lanes, validators = self._new_lanes(selection)
            self._lanes[key], self._validators[key] = lanes, validators
        for lane in closing:  # idle: closing only stops its worker
            threading.Thread(target=lane.close, daemon=True).start()
        return lanes

    def start(self) -> None:
        """Start the default lanes and warm them (ready once every worker has compiled)."""
        self._folder = Path(tempfile.mkdtemp(prefix="facturflow-serve-", dir=_scratch_root()))
        selection = parse_rule_sets(None, self.packs)
        lanes = self._lanes_for(selection)
        paths, invoices = [], warm_invoices(uuid.uuid4().hex[:12])
        for number, data in enumerate(invoices):
            path = self._folder / f"warm-{number}.xml"
            path.write_bytes(data)
            paths.append(str(path))
        futures = [lane.submit(path) for lane in lanes for path in paths]

        def wait() -> None:
            concurrent.futures.wait(futures)
            # The warm-up invoices are this start's own (never a hit, which would leave the
            # workers cold); their verdicts are of no use to anyone after it.
            if self._lane_cache is not None:
                for data in invoices:
                    key = self._lane_cache.key(data, selection, self.packs, self.limits)
                    if key is not None:
                        self._lane_cache.discard(key)
            if all(f.exception() is None for f in futures):
                self.ready.set()

        threading.Thread(target=wait, name="warm-up", daemon=True).start()

    def _check_queue(self) -> None:
        if self.waiting() >= self.queue_limit:
            raise ApiError(
                503, "QueueFull",
                f"{self.waiting()} requests are already waiting (the limit is "
                f"{self.queue_limit}); retry later", 4, {"Retry-After": "1"},
            )

    def scratch(self, data: bytes) -> Path:
        """A private file holding a request body (the workers read files)."""
        path = self._folder / uuid.uuid4().hex
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "wb") as stream:
            stream.write(data)
        return path

    def cached(self, data: bytes, selection: RuleSelection, name: str) -> Report | None:
        """The verdict cache's report for these bytes and this selection, or None (no cache, a
        miss, an entry that is corrupt or not this key's: never trusted)."""
        if self.cache is None or self.cache.problem is not None:
            return None
        key = self.cache.key(data, selection, self.packs, self.limits)
        if key is None:
            return None
        found = self.cache.get(key, name, selection)
        if found is None and self.cache.stats["misses"] % PRUNE_EVERY == 0:
            # The workers store what missed; keep the folder to its size now and then, as the
            # CLI does after a run (a walk of the folder: not on every request).
            threading.Thread(target=self._prune, name="cache-prune", daemon=True).start()
        return found

    def _prune(self) -> None:
        if self.cache is not None:
            with contextlib.suppress(OSError):  # a cache is never worth failing a request for
                self.cache.prune()

    def validate(self, path: Path, selection: RuleSelection) -> concurrent.futures.Future[Report]:
        lanes = self._lanes_for(selection)
        family = None
        if len(lanes) > 1:
            with contextlib.suppress(OSError):
                family = syntax_family(str(path))
        with self._lock:
            self._check_queue()
            lane = min(lanes, key=lambda lane: lane.load)
            if family is not None:
                # Syntax affinity, as BatchValidator's: CII to the even lanes, UBL to the odd
                # ones, so that a worker mostly holds one syntax's stylesheets; unless those
                # lanes are behind the least loaded by more than AFFINITY_SLACK requests.
                side = _FAMILIES.index(family) if family in _FAMILIES else 0
                own = min(lanes[side::2], key=lambda lane: lane.load)
                if own.load <= lane.load + AFFINITY_SLACK:
                    lane = own
            return cast("concurrent.futures.Future[Report]", lane.submit(str(path)))

    def convert(self, job: ConvertJob) -> concurrent.futures.Future[Any]:
        with self._lock:
            self._check_queue()
            if self._convert is None:
                self._convert_pool = worker_pool.WorkerPool(
                    cast(worker_pool.Task, _convert_task), _no_init, (), 1, self.timeout,
                    max_rss_mb=self.max_rss_mb,
                )
                self._convert = Lane(self._convert_pool.run, self._convert_pool.close, "convert")
            return self._convert.submit(json.dumps(job.__dict__))

    # -- numbers ----------------------------------------------------------------------------

    def _all_lanes(self) -> list[Lane]:
        lanes = [lane for group in list(self._lanes.values()) for lane in group]
        return lanes + ([self._convert] if self._convert is not None else [])

    def waiting(self) -> int:
        return sum(lane.waiting for lane in self._all_lanes())

    def in_flight(self) -> int:
        return sum(lane.busy for lane in self._all_lanes())

    def restarts(self) -> int:
        """Worker processes started to replace another (time limit, crash, memory, recycling)."""
        total = self._restarts_before
        for validators in list(self._validators.values()):
            total += _restarts(validators)
        if self._convert_pool is not None:
            total += max(0, self._convert_pool.stats.get("started", 0) - 1)
        return total

    def close(self) -> None:
        """Finish what is queued, stop every worker, remove the scratch files."""
        lanes = self._all_lanes()
        for lane in lanes:
            lane.close()
        if self.cache is not None and self.cache.stats["misses"]:
            self._prune()
        if self._folder != Path():
            shutil.rmtree(self._folder, ignore_errors=True)


def _restarts(validators: list[BatchValidator]) -> int:
    return sum(max(0, v.stats.get("started", 0) - 1) for v in validators)


def _scratch_root() -> str | None:
    """/dev/shm where there is one (request bodies never touch the disk), else the default."""
    shm = "/dev/shm"
    with contextlib.suppress(OSError):
        if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
            return shm
    return None

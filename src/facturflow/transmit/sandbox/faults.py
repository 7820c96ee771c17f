"""Fault injection: the fault kinds, the seeded plan that draws them, the test hooks' bounds."""

from __future__ import annotations

import math
import random
import threading
from collections import Counter, deque
from dataclasses import dataclass, field

FAULT_KINDS = ("500", "502", "503", "429", "drop", "drop_after", "stall")
# Bounds of the test hooks' inputs: beyond them a value is a mistake, not a test.
MAX_FORCED_FAULTS = 10_000
MAX_STALL_SECONDS = 600.0
MAX_CLOCK_MOVE = 100 * 365 * 24 * 3600.0  # a century


def _finite(name: str, value: object, low: float, high: float) -> float:
    """`value` as a float when it is a real number within [low, high], else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
        value
    ) or not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low:g} to {high:.10g}, not {value!r}")
    return float(value)


def _count(name: str, value: object, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(f"{name} must be a whole number from 0 to {high}, not {value!r}")
    return value


@dataclass
class FaultPlan:
    """Which requests fail and how. `rate` draws from a seeded RNG; `next` forces the next ones."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    stall_seconds: float = 2.0
    retry_after: float = 0.05
    seed: int | None = None
    forced: deque[str] = field(default_factory=deque)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if not self.kinds:
            raise ValueError("kinds must name at least one fault kind")
        _finite("rate", self.rate, 0.0, 1.0)
        _finite("stall_seconds", self.stall_seconds, 0.0, MAX_STALL_SECONDS)
        _finite("retry_after", self.retry_after, 0.0, MAX_STALL_SECONDS)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed,
                                                                                    int)):
            raise ValueError(f"seed must be a whole number or null, not {self.seed!r}")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()  # faults served, by kind

    def draw(self) -> str | None:
        with self._lock:  # handler threads draw concurrently; keep the seeded sequence intact
            kind = None
            if self.forced:
                kind = self.forced.popleft()
            elif self.rate > 0 and self._rng.random() < self.rate:
                kind = self._rng.choice(self.kinds)
            if kind is not None:
                self.injected[kind] += 1
            return kind

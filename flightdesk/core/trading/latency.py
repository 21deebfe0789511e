"""Order entry and cancel latency, on the engine clock.

A latency is ``latency_ms`` (constant) plus, with ``latency_dist``, a seeded random part of
mean ``latency_jitter_ms``: ``uniform`` (0..2*mean), ``exponential`` or ``lognormal``
(sigma 1, scaled to the mean). The same seed gives the same delays, so a backtest is
reproducible; the broker adds the delay to the engine clock, so replays see it too.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from flightdesk.core.errors import ConfigError


class LatencyDist(str, Enum):
    CONSTANT = "constant"
    UNIFORM = "uniform"
    EXPONENTIAL = "exponential"
    LOGNORMAL = "lognormal"


class LatencyModel:
    """Entry and cancel delays in ns (see the module docstring)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.entry_ns = _ms_ns(config, "latency_ms")
        self.cancel_ns = _ms_ns(config, "cancel_latency_ms")
        jitter = _ms_ns(config, "latency_jitter_ms")
        try:
            dist = LatencyDist(str(config.get("latency_dist", "constant")))
        except ValueError:
            names = ", ".join(d.value for d in LatencyDist)
            raise ConfigError(f"broker.latency_dist must be one of {names}, got "
                              f"{config.get('latency_dist')!r}",
                              key="broker.latency_dist") from None
        self.rng = random.Random(int(config.get("latency_seed", 7)))
        self._jitter = _sampler(dist, float(jitter), self.rng)
        self.zero = self.entry_ns == 0 and self.cancel_ns == 0 and jitter == 0

    def entry(self) -> int:
        return self.entry_ns + self._jitter()

    def cancel(self) -> int:
        return self.cancel_ns + self._jitter()


def _ms_ns(config: Mapping[str, Any], key: str) -> int:
    value = float(config.get(key, 0.0))
    if not (value >= 0.0 and math.isfinite(value)):
        raise ConfigError(f"broker.{key} must be a finite number >= 0, got {value!r}",
                          key=f"broker.{key}")
    return int(value * 1_000_000)


def _sampler(dist: LatencyDist, mean: float, rng: random.Random) -> Callable[[], int]:
    if mean <= 0 or dist is LatencyDist.CONSTANT:
        return lambda: 0
    if dist is LatencyDist.UNIFORM:
        return lambda: int(rng.uniform(0.0, 2.0 * mean))
    if dist is LatencyDist.EXPONENTIAL:
        return lambda: int(rng.expovariate(1.0 / mean))
    mu = math.log(mean) - 0.5  # lognormal(mu, 1) has mean exp(mu + 1/2) = mean
    return lambda: int(rng.lognormvariate(mu, 1.0))

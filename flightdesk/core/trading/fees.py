"""Paper trading fees: maker/taker rates per venue over the desk defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flightdesk.core.errors import ConfigError
from flightdesk.core.trading.orders import Liquidity


class FeeTable:
    """Maker/taker rates (bps in config, fractions here), per venue over the defaults."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.default = (float(config["maker_fee_bps"]) * 1e-4,
                        float(config["taker_fee_bps"]) * 1e-4)
        self.venues: dict[str, tuple[float, float]] = {}
        for entry in config.get("venue_fees", []):
            try:
                self.venues[str(entry["venue"])] = (float(entry["maker_bps"]) * 1e-4,
                                                    float(entry["taker_bps"]) * 1e-4)
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"broker.venue_fees entries need venue, maker_bps and "
                                  f"taker_bps; got {entry!r}", key="broker.venue_fees") from exc

    def rate(self, venue: str, liquidity: Liquidity) -> float:
        maker, taker = self.venues.get(venue, self.default)
        return maker if liquidity is Liquidity.MAKER else taker

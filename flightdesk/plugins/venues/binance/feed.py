"""Binance feed: the generic :class:`~flightdesk.plugins.venues.wsfeed.WsFeed`, configured.

Binance needs no subscribe frame and no application ping: the combined-stream URL
(``/stream?streams=btcusdt@depth@100ms/...``, built by ``config.stream_url``) carries the
subscription, and the WebSocket protocol ping keeps the connection alive. REST depth
snapshots come from ``GET {rest_url}{depth_path}?symbol=S&limit=N``, instrument rules from
``GET {rest_url}{info_path}`` (exchangeInfo, once at start-up). Rate-limit (429) and
ban (418) answers, with their ``Retry-After``, are handled by the generic loop like every
venue's.
"""

from __future__ import annotations

from flightdesk.plugins.venues.wsfeed import WsFeed, is_loopback

__all__ = ["BinanceFeed", "is_loopback"]


class BinanceFeed(WsFeed):
    """One WebSocket connection carrying ``symbols``' streams, plus REST depth snapshots."""

    def __init__(self, ws_url: str, rest_url: str, symbols: list[str], depth_limit: int = 1000,
                 *, name: str = "binance", depth_path: str = "/api/v3/depth",
                 info_path: str = "/api/v3/exchangeInfo",
                 silence_timeout: float = 30.0, backoff_initial: float = 0.5,
                 backoff_max: float = 30.0, http_timeout: float = 10.0,
                 ping_interval: float | None = 20.0, open_timeout: float = 10.0,
                 seed: int | None = None) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.symbols = [s.upper() for s in symbols]
        self.depth_limit = depth_limit
        self.depth_path = depth_path
        self.info_path = info_path
        base = f"{self.rest_url}{depth_path}"
        super().__init__(ws_url, name=name, silence_timeout=silence_timeout,
                         snapshot_url=lambda s: f"{base}?symbol={s}&limit={depth_limit}",
                         backoff_initial=backoff_initial, backoff_max=backoff_max,
                         http_timeout=http_timeout, ping_interval=ping_interval,
                         open_timeout=open_timeout, seed=seed)

    def instruments_url(self) -> str | None:
        """``exchangeInfo``: tick, lot and notional filters (read at start-up)."""
        return f"{self.rest_url}{self.info_path}"

    def request_snapshot(self, symbol: str) -> None:
        """Binance symbols are upper case on REST: ``btcusdt`` and ``BTCUSDT`` are one fetch."""
        super().request_snapshot(symbol.upper())

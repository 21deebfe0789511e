"""Strategies that tests run in another process with flightdesk.remote.run."""

import flightdesk


class Flipper(flightdesk.Strategy):
    """Wants long, then short, then long... one signal per batch: every batch is an order."""

    DEFAULTS = {"type": "flipper", "venue": "", "symbols": [], "enabled": True, "qty": 0.1}

    def __init__(self, name, config):
        super().__init__(name, config)
        self.n = 0

    def on_batch(self, batch):
        self.n += 1
        last = batch.num_rows - 1
        return flightdesk.signals_batch(batch.column("ts_event")[last].as_py(),
                                        batch.column("venue")[last].as_py(),
                                        batch.column("symbol")[last].as_py(),
                                        "buy" if self.n % 2 else "sell", qty=self.config["qty"])

"""flightdesk-sma-crossover: an SMA/EMA crossover strategy on bars built from trades."""

from flightdesk_sma_crossover.plugin import BarBuilder, SmaCrossover

__all__ = ["BarBuilder", "SmaCrossover"]

"""flightdesk-xarb: a cross-venue arbitrage detector."""

from flightdesk_xarb.plugin import CrossVenueArb

__all__ = ["CrossVenueArb"]

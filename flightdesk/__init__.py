"""flightdesk: a pure-Python trading desk host."""

__version__ = "0.1.0"

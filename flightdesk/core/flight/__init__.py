"""The desk's Arrow Flight service."""

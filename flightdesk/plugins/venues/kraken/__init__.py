"""Kraken spot WebSocket (v1 and v2): sans-I/O protocol with CRC32 book checksums."""

from flightdesk.plugins.venues.kraken.parse import KrakenProtocol, checksum_string, kraken_checksum

__all__ = ["KrakenProtocol", "checksum_string", "kraken_checksum"]

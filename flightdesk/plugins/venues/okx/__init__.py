"""OKX v5 public WebSocket: sans-I/O protocol with seqId chaining and CRC32 book checksums."""

from flightdesk.plugins.venues.okx.parse import (
    BOOK_CHANNELS,
    OkxProtocol,
    checksum_string,
    okx_checksum,
)

__all__ = ["BOOK_CHANNELS", "OkxProtocol", "checksum_string", "okx_checksum"]

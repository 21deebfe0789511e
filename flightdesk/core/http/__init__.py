"""The desk's HTTP server: health, readiness, metrics."""

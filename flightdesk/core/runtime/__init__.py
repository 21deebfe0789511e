"""Running a desk: composition, engine, bus, config, telemetry."""

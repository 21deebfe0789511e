"""Persistence and recordings: store, migrations, captures, replay, normalize."""

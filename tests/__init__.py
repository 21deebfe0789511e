"""The flightdesk test suite: a package, so ``tests.fixtures`` imports the same way however
pytest is started from the repository root."""

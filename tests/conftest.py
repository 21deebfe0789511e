"""Fixtures shared by the test modules. Plain helpers live in ``tests/fixtures/``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import flightdesk
from tests.fixtures.flight import make_ca_and_server_cert, start_desk
from tests.fixtures.recorded import DATA
from tests.fixtures.serve import RUNNING, kill_leftovers


@pytest.fixture(autouse=True)
def _no_serve_outlives_its_test() -> Iterator[None]:
    """A test that fails before stopping its ``flightdesk serve`` must not leave it running
    (processes started by module- or session-scoped fixtures are theirs to stop)."""
    before = set(RUNNING)
    yield
    kill_leftovers(keep=before)


@pytest.fixture
def recorded_data() -> Path:
    """The recordings directory (``../shared/data``); skips the test when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"recorded data {DATA} is absent (expected ../shared/data beside the repo)")
    return DATA


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA with server and client certificates (PEM paths by label)."""
    return make_ca_and_server_cert(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def embedded_desk(tmp_path: Path) -> Iterator[Callable[..., flightdesk.Engine]]:
    """``embedded_desk(**sections)``: a running desk (see ``start_desk``) under this test's
    ``tmp_path``, stopped when the test ends."""
    started: list[flightdesk.Engine] = []

    def start(rate: float = 500.0, **sections: Any) -> flightdesk.Engine:
        eng = start_desk(tmp_path, rate, **sections)
        started.append(eng)
        return eng

    yield start
    for eng in reversed(started):
        eng.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (``tests/browser.py``) shared by a module's tests; skips, saying
    why, when no chromium is installed."""
    from tests.browser import Browser, find_chromium

    if find_chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium, or set "
                    "FLIGHTDESK_CHROMIUM)")
    with Browser() as b:
        yield b


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the browser tests' screenshots are (test artifacts, kept after the run)."""
    shots = sys.modules.get("tests.browser")
    for path in getattr(shots, "SCREENSHOTS", []):
        terminalreporter.write_line(f"browser screenshot: {path}")

"""The example plugins in plugins_examples/: pip-installed into a venv, listed by
`flightdesk plugins`, and run by `flightdesk serve` — their signals and orders seen on Flight."""

from pathlib import Path

import pytest

from tests.fixtures.plugin_venv import Serve, make_venv, pip_install, run_flightdesk

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[1] / "plugins_examples"
PACKAGES = ("flightdesk-sma-crossover", "flightdesk-onnx-imbalance", "flightdesk-xarb")

CONFIG = """
[venues.sa]
type = "sim"
rate = 300
symbols = ["BTCUSDT"]
prices = [60000.0]

[venues.sb]
type = "sim"
rate = 300
seed = 2
symbols = ["BTCUSDT"]
prices = [60003.0]

[strategies.trend]
type = "sma_crossover"
venue = "sa"
bar_ms = 100.0
fast = 2
slow = 4

[strategies.nn]
type = "onnx_imbalance"
venue = "sa"

[strategies.arb]
type = "xarb"
venues = ["sa", "sb"]
fees_bps = [0.1, 0.1]
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    where = tmp_path_factory.mktemp("examples")
    python = make_venv(where / "venv")
    pip_install(python, *(EXAMPLES / p for p in PACKAGES))
    return python, where


def test_each_example_is_listed_with_its_version_and_strategy(venv):
    python, _ = venv
    out = run_flightdesk(python, "plugins")
    assert out.returncode == 0, out.stderr
    for line in ("sma_crossover 0.1.0: strategy sma_crossover",
                 "onnx_imbalance 0.1.0: strategy onnx_imbalance", "xarb 0.1.0: strategy xarb"):
        assert line in out.stdout, out.stdout


def test_serve_runs_every_example_and_flight_shows_their_signals_and_orders(venv):
    python, where = venv
    config = where / "desk.toml"
    config.write_text(CONFIG)
    serve = Serve(python, config, where / "data")
    try:
        names = ("trend", "nn", "arb")
        assert serve.wait(lambda: all(serve.strategies()[n]["signals"] > 0 for n in names)), \
            serve.strategies()
        assert serve.wait(lambda: all(serve.orders_of(n) for n in names))
        strategies = serve.strategies()
        assert {strategies[n]["type"] for n in names} == {"sma_crossover", "onnx_imbalance",
                                                          "xarb"}
        assert not any(strategies[n]["quarantined"] for n in names)
        arb_venues = {o["venue"] for o in serve.orders_of("arb")}
        assert arb_venues == {"sa", "sb"}
    finally:
        serve.stop()

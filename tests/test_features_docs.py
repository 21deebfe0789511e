"""The code in docs/strategies.md runs: its strategy trades in a desk on the sim venue."""

import re
from pathlib import Path

import flightdesk
from tests.fixtures.flight import desk_config
from tests.fixtures.waiting import wait_for

DOC = Path(__file__).resolve().parents[1] / "docs" / "strategies.md"


def test_the_first_example_of_the_strategy_guide_trades(tmp_path):
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]
    ns: dict = {}
    exec(compile(code, str(DOC), "exec"), ns)  # noqa: S102 - our own documentation
    plugin = type("DocPlugin", (), {"flightdesk_register_strategies": staticmethod(
        ns["flightdesk_register_strategies"])})()
    cfg = desk_config(tmp_path, lean={"type": "lean", "venue": "sim"})
    with flightdesk.Engine(cfg, plugins=[plugin]) as eng:
        assert wait_for(lambda: eng.status()["trading"].get("fills", 0) > 0)
        slot = eng.status()["strategies"][0]
    assert slot["name"] == "lean" and slot["signals"] > 0 and not slot["quarantined"]

"""`flightdesk new-plugin`: the generated package installs, is listed, runs in `serve`, and its
own generated test passes — end to end, in a venv, with real subprocesses."""

import subprocess
import sys

import pytest

from flightdesk.commands.new_plugin import names
from flightdesk.core.errors import ConfigError
from tests.fixtures.plugin_venv import Serve, make_venv, pip_install, run_flightdesk

pytestmark = pytest.mark.e2e


def test_names():
    assert names("flightdesk-mean-rev") == {"dist": "flightdesk-mean-rev",
                                            "module": "flightdesk_mean_rev",
                                            "strategy": "mean_rev", "cls": "MeanRevStrategy"}
    with pytest.raises(ConfigError, match="use letters, digits"):
        names("9lives")
    with pytest.raises(ConfigError, match="keyword"):
        names("class")


def test_round_trip(tmp_path):
    out = subprocess.run([sys.executable, "-m", "flightdesk", "new-plugin", "flightdesk-meanrev",
                          "--dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pkg = tmp_path / "flightdesk-meanrev"
    assert {p.name for p in pkg.iterdir()} >= {"pyproject.toml", "README.md",
                                                "flightdesk_meanrev", "tests"}
    again = subprocess.run([sys.executable, "-m", "flightdesk", "new-plugin",
                            "flightdesk-meanrev", "--dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr

    python = make_venv(tmp_path / "venv")
    pip_install(python, pkg)
    listed = run_flightdesk(python, "plugins")
    assert "meanrev 0.1.0: strategy meanrev" in listed.stdout, listed.stdout + listed.stderr

    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(pkg / "tests")], capture_output=True, text=True, timeout=180,
                           cwd=pkg)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout

    config = tmp_path / "desk.toml"
    config.write_text('[venues.sim]\ntype = "sim"\nrate = 400\n\n'
                      '[strategies.mine]\ntype = "meanrev"\nvenue = "sim"\n')
    serve = Serve(python, config, tmp_path / "data")
    try:
        assert serve.wait(lambda: serve.strategies()["mine"]["signals"] > 0)
        assert serve.wait(lambda: any(o["status"] == "filled" for o in serve.orders_of("mine")))
    finally:
        serve.stop()

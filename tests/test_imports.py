"""Start-up: ``import flightdesk`` and ``flightdesk --help`` load none of the heavy parts
(the names are loaded on first use), and every public name still resolves."""

import json
import subprocess
import sys

import flightdesk

HEAVY = ("pyarrow", "numpy", "onnxruntime", "opentelemetry", "pandas", "websockets", "rich")


def _loaded(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_flightdesk_loads_no_heavy_module():
    assert _loaded("import flightdesk") == []


def test_cli_help_loads_no_heavy_module():
    code = ("import sys\nsys.argv = ['flightdesk', '--help']\nfrom flightdesk.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass")
    assert _loaded(code) == []


def test_every_public_name_resolves_and_is_listed():
    for name in flightdesk.__all__:
        assert getattr(flightdesk, name) is not None, name
    assert set(dir(flightdesk)) == set(flightdesk.__all__)
    try:
        flightdesk.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")

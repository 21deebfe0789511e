"""Secrets never reach the store, status or the logs; store and capture files are 0600."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

import flightdesk
from flightdesk.core.errors import ConfigError
from flightdesk.core.runtime.config import load_config
from flightdesk.core.runtime.redact import REDACTED, redact_config, redact_url
from tests.fixtures.flight import start_desk
from tests.fixtures.waiting import wait_for

TRADE = "tr4de-s3cret-token"
READ = "r3ad-s3cret-token"


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secrets")
    root = logging.getLogger()
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # every record of the desk's life, whatever its level
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        eng = start_desk(tmp, desk={"record": True},
                         flight={"trade_tokens": [TRADE], "read_tokens": [READ]})
        wait_for(lambda: eng.status()["books"], what="a synced book")
        yield eng, tmp, records
        eng.stop()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_runs_config_has_no_tokens(desk):
    eng, _, _ = desk
    eng.desk.store.flush()
    config = json.loads(eng.desk.store.read("runs").column("config")[0].as_py())
    assert TRADE not in json.dumps(config) and READ not in json.dumps(config)
    assert config["flight"]["trade_tokens"] == [REDACTED]
    assert config["flight"]["read_tokens"] == [REDACTED]
    assert config["flight"]["port"] == 0  # the rest as it was


def test_status_shows_no_tokens(desk):
    eng, _, _ = desk
    assert TRADE not in json.dumps(eng.status(), default=str)
    remote = flightdesk.connect(eng.flight_uri, token=READ).status()
    assert TRADE not in json.dumps(remote) and READ not in json.dumps(remote)


def test_log_lines_never_print_tokens(desk):
    eng, _, records = desk
    flightdesk.connect(eng.flight_uri, token=READ).status()
    assert records  # the desk logged its start
    for record in records:
        text = record.getMessage() + str(record.exc_info or "")
        assert TRADE not in text and READ not in text, text


def test_store_and_capture_files_are_owner_only(desk):
    eng, tmp, _ = desk
    data = tmp / "data"
    wait_for(lambda: list((data / "captures").glob("capture-*")), what="a capture file")
    files = [data / "flightdesk.sqlite", data / "flightdesk.sqlite-wal",
             data / "flightdesk.sqlite-shm", *(data / "captures").glob("capture-*")]
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_an_existing_store_file_is_made_owner_only(tmp_path):
    from flightdesk.core.storage.store import Store

    path = tmp_path / "old.sqlite"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    store = Store(path).start()
    store.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_redaction_rules():
    cfg = {"flight": {"trade_tokens": ["a", "b"], "read_tokens": [], "tls_key": "/etc/k.pem"},
           "store": {"uri": "postgresql://desk:pa55@db:5432/desk"},
           "venues": {"x": {"api_key": "AK", "secret": "S", "passphrase": "P",
                            "symbols": ["BTCUSDT"]}}}
    out = redact_config(cfg)
    assert out["flight"] == {"trade_tokens": [REDACTED] * 2, "read_tokens": [],
                             "tls_key": "/etc/k.pem"}  # a key *path* is fine
    assert out["store"]["uri"] == f"postgresql://desk:{REDACTED}@db:5432/desk"
    assert out["venues"]["x"] == {"api_key": REDACTED, "secret": REDACTED,
                                  "passphrase": REDACTED, "symbols": ["BTCUSDT"]}
    assert redact_url("wss://h/ws?listenKey=abc&symbol=X") == f"wss://h/ws?listenKey={REDACTED}&symbol=X"


def test_a_mistyped_token_is_not_echoed_in_the_config_error():
    with pytest.raises(ConfigError) as err:
        load_config(env={"FLIGHTDESK_FLIGHT__TRADE_TOKENS": "hunter2-token"})
    assert "hunter2" not in str(err.value) and "trade_tokens" in str(err.value)

"""Service threads at a lower CPU priority than the engine thread (Linux)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

import flightdesk
from flightdesk.core.runtime.priority import run_niced
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="per-thread nice values are a Linux feature")


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def test_threads_started_niced_inherit_it_and_the_caller_keeps_its_own():
    me = _nice(threading.get_native_id())
    seen: dict[str, int] = {}
    done = threading.Event()

    def start() -> threading.Thread:
        t = threading.Thread(target=lambda: (seen.update(child=_nice(threading.get_native_id())),
                                             done.wait(5)))
        t.start()
        return t

    child = run_niced(3, start)
    wait_for(lambda: "child" in seen, timeout=5, what="the niced thread to read its nice value")
    done.set()
    child.join()
    assert seen["child"] == me + 3
    assert _nice(threading.get_native_id()) == me


def test_errors_reach_the_caller():
    with pytest.raises(ValueError, match="boom"):
        run_niced(1, lambda: (_ for _ in ()).throw(ValueError("boom")))


def test_desk_services_run_niced_and_the_engine_thread_does_not(tmp_path):
    me = _nice(threading.get_native_id())
    cfg = {"desk": {"data_dir": str(tmp_path), "service_nice": 4},
           "flight": {"port": 0}, "venues": {}, "strategies": {}}
    with flightdesk.Engine(cfg, tune_process=True) as eng:  # as `flightdesk serve` runs it
        by_name = {t.name: t.native_id for t in threading.enumerate()}
        assert _nice(by_name["flightdesk-engine"]) == me
        assert _nice(by_name["flightdesk-store"]) == me + 4
        # a Flight handler runs on one of gRPC's threads, started by the niced thread
        seen: list[int] = []
        subscribe = eng.desk.bus.subscribe

        def spy(*args, **kwargs):
            seen.append(_nice(threading.get_native_id()))
            return subscribe(*args, **kwargs)

        eng.desk.bus.subscribe = spy
        client = flightdesk.connect(eng.flight_uri)
        stream = client.stream("quotes")
        wait_for(lambda: seen, timeout=5, interval=0.01, what="a Flight handler to subscribe")
        stream.close()
        assert seen == [me + 4]
        # and the niced Flight server answers
        assert flightdesk.connect(eng.flight_uri).status()["run_id"] == eng.status()["run_id"]


def test_an_embedded_desk_leaves_thread_priorities_alone_unless_asked(tmp_path):
    """A notebook's ``Engine`` must not renice threads or go real-time behind its back."""
    me = _nice(threading.get_native_id())
    cfg = {"desk": {"data_dir": str(tmp_path), "service_nice": 4, "engine_priority": 5},
           "flight": {"port": 0}, "venues": {}, "strategies": {}}
    with flightdesk.Engine(cfg) as eng:
        by_name = {t.name: t.native_id for t in threading.enumerate()}
        assert _nice(by_name["flightdesk-store"]) == me
        assert os.sched_getscheduler(by_name["flightdesk-engine"]) == os.SCHED_OTHER
        assert eng.status()["engine_priority"] == {"wanted": 0, "error": ""}


def _fifo_allowed() -> bool:
    """Whether this process may use SCHED_FIFO (root or CAP_SYS_NICE / RLIMIT_RTPRIO)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe)  # a throwaway thread: the policy ends with it
    t.start()
    t.join()
    return result[0]


def test_engine_priority_puts_the_engine_and_writers_under_sched_fifo_or_says_why(tmp_path):
    cfg = {"desk": {"data_dir": str(tmp_path), "engine_priority": 5},
           "flight": {"port": 0, "data_process": True}, "venues": {"sim": {"rate": 200}}}
    with flightdesk.Engine(cfg, tune_process=True) as eng:  # as `flightdesk serve` runs it
        by_name = {t.name: t.native_id for t in threading.enumerate()}
        status = eng.status()["engine_priority"]
        policy = {name: os.sched_getscheduler(by_name[name]) & ~os.SCHED_RESET_ON_FORK
                  for name in ("flightdesk-engine", "flightdesk-store", "flightdesk-forward")}
        if _fifo_allowed():
            assert status == {"wanted": 5, "error": ""}
            assert set(policy.values()) == {os.SCHED_FIFO}
            assert os.sched_getparam(by_name["flightdesk-engine"]).sched_priority == 5
            assert os.sched_getparam(by_name["flightdesk-store"]).sched_priority == 4
            # nothing else inherits it: gRPC's threads, the data-plane process
            plane = eng.desk.flight.data_plane.proc.pid
            assert os.sched_getscheduler(plane) == os.SCHED_OTHER
            tasks = Path("/proc/self/task")
            grpc = [int(t.name) for t in tasks.iterdir()
                    if (t / "comm").read_text().startswith(("grpc", "event"))]
            assert grpc and {os.sched_getscheduler(t) for t in grpc} == {os.SCHED_OTHER}
        else:
            assert "CAP_SYS_NICE" in status["error"]
            assert set(policy.values()) == {os.SCHED_OTHER}
        # and it runs either way
        wait_for(lambda: eng.desk.bus.published.get("quotes", 0) > 0, what="quotes")

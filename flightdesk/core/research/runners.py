"""Where a sweep's tasks run: local processes, or a Dask cluster.

``--cluster`` absent: a ``ProcessPoolExecutor`` of ``--jobs`` processes, as before.
``--cluster tcp://host:8786``: a Dask ``Client`` of that scheduler; ``--cluster local:N``:
a ``LocalCluster`` of N single-threaded worker processes on 127.0.0.1. Both are driven the
same way (submit, wait with a timeout, count running, cancel), so one loop in
:mod:`flightdesk.core.research.sweep` runs them, and a task is the same function call
wherever it runs. Dask is imported only here, only for ``--cluster``.

Interrupting: pool processes ignore SIGINT (the client handles Ctrl-C), and a shared flag
stops their running backtests at the next progress tick, cleaning up after themselves; a
Dask worker finishes the task it is running (Dask does not interrupt a running task) and
publishes it whole, and every task not started is cancelled.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import re
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from flightdesk.core.errors import ConfigError

_LOCAL = re.compile(r"^local:(\d+)$")


class Runner(ABC):
    """Runs task functions; futures are those of ``concurrent.futures`` or Dask."""

    #: tasks that can run at once (processes, or the cluster's threads)
    slots: int = 1

    @abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any, key: str) -> Any:
        """Start ``fn(*args)``; ``key`` names it on a scheduler (unique per attempt)."""

    @abstractmethod
    def wait(self, futures: Iterable[Any], timeout: float) -> set[Any]:
        """The futures that are done, waiting up to ``timeout`` for the first."""

    @abstractmethod
    def running(self, pending: Iterable[Any]) -> int:
        """How many of ``pending`` are running now."""

    @abstractmethod
    def cancel(self, pending: Iterable[Any]) -> None:
        """Cancel what has not started; stop what runs where that is possible."""

    @abstractmethod
    def close(self) -> None: ...


def connect(cluster: str | None, jobs: int) -> Runner:
    """The runner for ``--cluster`` (None: local processes)."""
    if cluster is None:
        return LocalRunner(jobs)
    local = _LOCAL.match(cluster)
    if local is None and not cluster.startswith(("tcp://", "tls://")):
        raise ConfigError(f"--cluster {cluster!r}: give a Dask scheduler address "
                          "(tcp://HOST:8786) or local:N")
    if local is not None and int(local[1]) < 1:
        raise ConfigError(f"--cluster {cluster!r}: local:N needs N >= 1 workers")
    return DaskRunner(cluster, int(local[1]) if local else 0)


# -- local processes ------------------------------------------------------------------------
def _pool_init(stop: Any) -> None:
    from flightdesk.core.research import task

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    task.should_stop = stop.is_set


class LocalRunner(Runner):
    def __init__(self, jobs: int) -> None:
        self.slots = max(1, jobs)
        self._stop = multiprocessing.get_context().Event()
        self._pool = cf.ProcessPoolExecutor(max_workers=self.slots, initializer=_pool_init,
                                            initargs=(self._stop,))

    def submit(self, fn: Callable[..., Any], *args: Any, key: str) -> Any:
        return self._pool.submit(fn, *args)

    def wait(self, futures: Iterable[Any], timeout: float) -> set[Any]:
        done, _ = cf.wait(list(futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return done

    def running(self, pending: Iterable[Any]) -> int:
        return min(self.slots, sum(1 for f in pending if f.running()))

    def cancel(self, pending: Iterable[Any]) -> None:
        self._stop.set()
        for future in pending:
            future.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- Dask -----------------------------------------------------------------------------------
class DaskRunner(Runner):
    def __init__(self, address: str, local_workers: int = 0) -> None:
        try:
            import distributed
        except ImportError:
            raise ConfigError("--cluster needs Dask: pip install 'flightdesk[cluster]'"
                              ) from None
        logging.getLogger("distributed").setLevel(logging.WARNING)
        self._distributed = distributed
        self._cluster: Any = None
        try:
            if local_workers:
                self._cluster = distributed.LocalCluster(
                    n_workers=local_workers, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None, silence_logs=logging.WARNING)
                self.client = distributed.Client(self._cluster)
            else:
                self.client = distributed.Client(address)
        except OSError as exc:
            self.close()
            raise ConfigError(f"--cluster {address}: cannot reach the Dask scheduler: {exc}"
                              ) from None
        self.slots = max(1, sum(self.client.nthreads().values()))

    def submit(self, fn: Callable[..., Any], *args: Any, key: str) -> Any:
        return self.client.submit(fn, *args, key=key, pure=False)

    def wait(self, futures: Iterable[Any], timeout: float) -> set[Any]:
        try:
            done, _ = self._distributed.wait(list(futures), timeout=timeout,
                                             return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set()
        return set(done)

    def running(self, pending: Iterable[Any]) -> int:
        keys = {f.key for f in pending}
        processing = self.client.processing()
        busy = sum(1 for tasks in processing.values() for k in tasks if k in keys)
        self.slots = max(1, sum(self.client.nthreads().values()))  # workers come and go
        return min(busy, self.slots)

    def cancel(self, pending: Iterable[Any]) -> None:
        self.client.cancel(list(pending))

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()

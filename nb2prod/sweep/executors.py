"""Where a sweep's runs go: this machine, N at a time, or a Dask cluster, one task per run.

Both call :func:`nb2prod.sweep.jobs.run_job` on each job and report each outcome as it comes.
Dask is imported only by :func:`connect`, that is only with ``--cluster``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..errors import Nb2prodError
from .jobs import close_servers, interrupt_children, prestart, run_job

#: Seconds to reach the scheduler and find a worker; an unreachable cluster fails this fast.
CONNECT_TIMEOUT = 5.0
_ADDRESS = re.compile(r"(tcp|tls|ws|wss|ucx)://[^\s/:]+(:\d+)?")

Done = Callable[[int, dict[str, Any]], None]  # (the job's index, its outcome)


class Executor(Protocol):
    where: str  # how the sweep's report says where the runs went

    def run(self, jobs: Sequence[dict[str, Any]], done: Done) -> list[dict[str, Any] | None]:
        """Every job's outcome, in order (None for a job stopped before it ran). ``done`` is
        called with each outcome as it arrives. On Ctrl-C, the runs under way end as
        interrupted, no other starts, and KeyboardInterrupt is raised once they have."""
        ...

    def close(self) -> None: ...


class LocalExecutor:
    """Up to ``parallel`` runs at a time on this machine, each in a point server of its own
    (:mod:`nb2prod.sweep.jobs`), started now so that their imports overlap the first run."""

    def __init__(self, parallel: int) -> None:
        self.parallel = parallel
        self.where = f"on this machine, {parallel} at a time"
        self.pool = concurrent.futures.ThreadPoolExecutor(parallel, "nb2prod-sweep")
        prestart(parallel)

    def run(self, jobs: Sequence[dict[str, Any]], done: Done) -> list[dict[str, Any] | None]:
        results: list[dict[str, Any] | None] = [None] * len(jobs)
        futures = {self.pool.submit(run_job, job): i for i, job in enumerate(jobs)}
        try:
            for future in concurrent.futures.as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                done(i, results[i] or {})
        except KeyboardInterrupt:
            # No other run starts; those under way stop their kernels and record themselves as
            # interrupted, and their outcomes still come in.
            for future in futures:
                future.cancel()
            interrupt_children()
            for future, i in futures.items():
                if results[i] is None and not future.cancelled():
                    results[i] = future.result()
                    done(i, results[i] or {})
            raise
        return results

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        close_servers()


class DaskExecutor:
    """One task per run on the Dask cluster at ``address``."""

    def __init__(self, client: Any, address: str) -> None:
        self.client = client
        self.where = f"on the Dask cluster at {address}"
        # A warm point server per worker thread, importing while the shared steps run. A
        # worker that cannot (nb2prod missing there) says so when its task fails.
        with contextlib.suppress(Exception):
            client.run(_prestart_on_worker)

    def run(self, jobs: Sequence[dict[str, Any]], done: Done) -> list[dict[str, Any] | None]:
        from distributed import as_completed

        results: list[dict[str, Any] | None] = [None] * len(jobs)
        futures = {
            # pure=False: the same job submitted again (a retried sweep) is a new task.
            self.client.submit(run_job, job, key=f"nb2prod-{job['run_id']}", pure=False): i
            for i, job in enumerate(jobs)
        }
        try:
            for future in as_completed(list(futures), loop=self.client.loop):
                i = futures[future]
                try:
                    results[i] = future.result()
                except Exception as exc:  # noqa: BLE001 - the task, not the sweep, failed
                    results[i] = _task_error(jobs[i], exc)
                done(i, results[i] or {})
        except KeyboardInterrupt:
            # No other run starts; those under way on the workers finish (interrupting them
            # could stop another sweep's runs sharing a worker).
            self.client.cancel(list(futures))
            raise
        return results

    def close(self) -> None:
        self.client.close()


def _prestart_on_worker(dask_worker: Any) -> None:
    """On a Dask worker (``client.run`` passes it): a point server per thread."""
    prestart(int(getattr(dask_worker, "nthreads", 1)))


def _task_error(job: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """A task that raised on its worker: nb2prod missing or different there, or the worker
    lost (Dask retries a task whose worker died, then gives up)."""
    text = _first_line(exc)
    if isinstance(exc, ImportError) or "deserializ" in text.lower():
        why = "the worker could not load nb2prod's task, so its Python differs from this one"
        fix = "install this nb2prod (and the pipeline's requirements.txt) on every worker"
    else:
        why = f"the Dask task failed ({type(exc).__name__}: {text})"
        fix = "check the workers' logs (a worker may have run out of memory), then sweep again"
    message = f"{why}. Fix: {fix}."
    return {"id": None, "status": "error", "exit_code": 1, "error": message}


def connect(address: str) -> DaskExecutor:
    """A client of the Dask scheduler at ``address`` with at least one worker, or exit 2 within
    about :data:`CONNECT_TIMEOUT` seconds saying why."""
    if not _ADDRESS.fullmatch(address):
        raise Nb2prodError(
            f"--cluster {address}: not the address of a Dask scheduler. Fix: give it as "
            "tcp://HOST:PORT (the port is 8786 unless the scheduler was started with another), "
            "e.g. --cluster tcp://scheduler.example.org:8786."
        )
    try:
        from distributed import Client
    except ImportError:
        raise Nb2prodError(
            f"--cluster {address}: running on Dask needs the `distributed` package, which is "
            "not installed here. Fix: pip install 'nb2prod[dask]'."
        ) from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:  # refused, unknown host, or no answer in time
        raise Nb2prodError(
            f"--cluster {address}: no Dask scheduler answered there within "
            f"{CONNECT_TIMEOUT:g} s ({_first_line(exc)}). Fix: check the address and that the "
            f"scheduler runs (`dask scheduler`, with workers started by `dask worker "
            f"{address}`), or leave out --cluster to run on this machine."
        ) from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError):
        client.close()
        raise Nb2prodError(
            f"--cluster {address}: the scheduler answered but has no workers. Fix: start at "
            f"least one with `dask worker {address}` (with the project folder at the same path "
            "on its machine)."
        ) from None
    return DaskExecutor(client, address)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

"""CPU-bound requests (planning and exporting notebooks) in worker processes, off the server.

Analysing a notebook is Python and C code that holds the GIL: run in a thread of the server's
process, one large cell stalled every other request, because the parser holds the GIL for
seconds in a single call. So the handlers hand inspect and export to a small pool of worker
processes, started on the first such request and kept warm after it. Workers run at a lower
scheduling priority than the server, so the server's own requests win the CPU.

Workers are started with ``spawn``, never forked: a fork of the server would copy its threads'
locks in whatever state they were. A worker's :class:`ApiError` comes back as data and is
raised again in the server; a worker that dies (out of memory, say) gives a 503, and the next
request gets a fresh pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .errors import ApiError

WORKERS = 2  # one long inspect leaves the other worker to the rest
NICENESS = 5

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def _start_worker() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not on every OS
        os.nice(NICENESS)
    with contextlib.suppress(Exception):  # warm up: the first request should not pay imports
        from ..export import writer  # noqa: F401
        from ..plan import planner  # noqa: F401


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=WORKERS,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
            )
        return _pool


def _discard(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


def shutdown() -> None:
    """Stop the workers (they also stop when the server's process exits)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _call(func: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """In the worker: ``func(*args)``, with an ApiError turned into data that pickles."""
    try:
        return ("ok", func(*args))
    except ApiError as exc:
        return ("error", exc.status_code, exc.message, exc.extra)
    except MemoryError:
        return ("error", 503, _OUT_OF_MEMORY, {})


_OUT_OF_MEMORY = (
    "nb2prod's worker process ran out of memory on this request. Fix: try again; if it happens "
    "again, the notebook is too large to analyse here."
)


async def run(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` in a worker process; ``func`` and ``args`` must pickle."""
    executor = _executor()
    try:
        outcome = await asyncio.wrap_future(executor.submit(_call, func, args))
    except BrokenProcessPool:
        _discard(executor)
        raise ApiError(
            503,
            "nb2prod's worker process stopped while working on this request (out of memory?). "
            "Fix: try again; if it happens again, the notebook is too large to analyse here.",
        ) from None
    if outcome[0] == "error":
        _, status, message, extra = outcome
        raise ApiError(status, message, **extra)
    return outcome[1]

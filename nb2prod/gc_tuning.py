"""Importing large libraries without paying for the cyclic garbage collector.

Importing MLflow, or scikit-learn and pandas, creates over a million long-lived objects and next
to no garbage, yet each burst of allocations sets off a collection that walks all of them: about
a third of such an import's time, and most of the first few calls made afterwards. Freezing the
imported objects moves them where collections never look again, which is the use
``gc.freeze`` is documented for (and, before ``fork``, it keeps children from copying pages the
collector would otherwise touch).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def imports_without_gc() -> Iterator[None]:
    """Run the block with the collector off, then freeze everything alive and turn it back on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()

"""imports_without_gc: the collector is off inside, on again after (as it was), objects frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from nb2prod.gc_tuning import imports_without_gc


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()  # give pytest's objects back to the collector
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


def test_collector_off_inside_then_back_on_with_the_imports_frozen() -> None:
    gc.enable()
    gc.unfreeze()
    with imports_without_gc():
        assert not gc.isenabled()
        import email.feedparser  # noqa: F401 - anything that allocates
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_collector_back_on_when_the_block_fails() -> None:
    gc.enable()
    with pytest.raises(ImportError), imports_without_gc():
        import nb2prod_no_such_module  # noqa: F401
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    with imports_without_gc():
        pass
    assert not gc.isenabled()

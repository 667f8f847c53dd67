"""What the kernel zygote imports, and what it hands on to the kernels it forks (unit tests of
nb2prod.run.zygote.Preloader with made-up packages; tests/run/test_kernels.py compares real
kernels)."""

from __future__ import annotations

import builtins
import os
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nb2prod.run.zygote import Preloader, _kernel_like


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Makes a uniquely named package with the given __init__ source; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(source: str) -> str:
        name = f"nb2prod_fake_{uuid.uuid4().hex[:8]}"
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(source.replace("NAME", name))
        made.append(name)
        return name

    yield make
    for name in list(sys.modules):
        if name.partition(".")[0] in made:
            del sys.modules[name]


def test_only_allowed_packages_are_imported(package: Callable[[str], str]) -> None:
    safe, other = package("x = 1"), package("x = 2")
    preloader = Preloader(allowed=frozenset({safe}))
    reply = preloader.preload(f"import {safe}\nimport {other}\nfrom {other} import x")
    assert safe in sys.modules and other not in sys.modules
    assert reply == {"skipped": 2} and preloader.spoilt is None


def test_an_allowed_package_importing_an_unknown_one_spoils_the_zygote(
    package: Callable[[str], str],
) -> None:
    unknown = package("")
    safe = package(f"import {unknown}")
    preloader = Preloader(allowed=frozenset({safe}))
    reply = preloader.preload(f"import {safe}")
    assert preloader.spoilt is not None and unknown in preloader.spoilt
    assert reply["spoilt"] == preloader.spoilt
    # Nothing is imported once spoilt.
    later = package("")
    preloader.allowed = frozenset({safe, later})
    preloader.preload(f"import {later}")
    assert later not in sys.modules


def test_a_package_that_is_not_installed_is_harmless(package: Callable[[str], str]) -> None:
    preloader = Preloader(allowed=frozenset({"nb2prod_not_installed"}))
    preloader.preload("import nb2prod_not_installed")
    assert preloader.spoilt is None


def test_a_missing_name_in_a_complete_module_is_harmless(package: Callable[[str], str]) -> None:
    safe = package("x = 1")
    preloader = Preloader(allowed=frozenset({safe}))
    preloader.preload(f"from {safe} import nothing_here")
    assert preloader.spoilt is None and safe in sys.modules


@pytest.mark.parametrize(
    "source",
    [
        "raise RuntimeError('half done')",
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()",
        "import sys\nsys.path.append('/nowhere')",
    ],
    ids=["fails", "starts a thread", "changes sys.path"],
)
def test_imports_a_fork_cannot_carry_spoil_the_zygote(
    package: Callable[[str], str], source: str
) -> None:
    safe = package(source)
    preloader = Preloader(allowed=frozenset({safe}))
    preloader.preload(f"import {safe}")
    if "/nowhere" in sys.path:
        sys.path.remove("/nowhere")
    assert preloader.spoilt is not None


def test_environment_changes_are_replayed_in_the_kernel(
    package: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NB2PROD_FAKE_GONE", "1")
    safe = package(
        "import os\nos.environ.setdefault('NB2PROD_FAKE_SET', 'yes')\n"
        "del os.environ['NB2PROD_FAKE_GONE']"
    )
    monkeypatch.delenv("NB2PROD_FAKE_SET", raising=False)
    preloader = Preloader(allowed=frozenset({safe}))
    preloader.preload(f"import {safe}")
    try:
        kernel_env = {"PATH": "/bin", "NB2PROD_FAKE_GONE": "1"}
        assert preloader.environment(kernel_env) == {"PATH": "/bin", "NB2PROD_FAKE_SET": "yes"}
    finally:
        os.environ.pop("NB2PROD_FAKE_SET", None)


def test_warning_filters_go_in_front_of_the_kernels_own(package: Callable[[str], str]) -> None:
    saved = list(warnings.filters)
    try:
        safe = package(
            "import warnings\n"
            "warnings.filterwarnings('ignore', message='from the package')\n"
            "warnings.filterwarnings('error', message='appended', append=True)"
        )
        preloader = Preloader(allowed=frozenset({safe}))
        preloader.preload(f"import {safe}")
        assert preloader.spoilt is None
        own = preloader.own_filters()  # in the child, before the kernel starts
        assert warnings.filters == saved
        warnings.filterwarnings("ignore", message="the kernel's own")  # the kernel starts
        Preloader.restore_filters(own)  # then the step's imports would have run
        messages = [f[1].pattern if f[1] else None for f in warnings.filters]
        assert messages[:2] == ["from the package", "the kernel's own"]
        assert messages[-1] == "appended"
    finally:
        warnings.filters[:] = saved


def test_imports_see_a_kernel_as_pandas_looks_for_one() -> None:
    assert not hasattr(builtins, "get_ipython")
    stdout = sys.stdout
    with _kernel_like():
        shell = builtins.get_ipython()  # type: ignore[attr-defined]
        assert hasattr(shell, "kernel") and sys.stdout.encoding == "UTF-8"
    assert not hasattr(builtins, "get_ipython") and sys.stdout is stdout

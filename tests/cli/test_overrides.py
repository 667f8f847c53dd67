"""Parameter overrides (``-p``, ``-f``, REST ``params``): hostile YAML, types, suggestions.

The user-facing refusals go through the real ``nb2prod run`` in a subprocess; the wording of
each kind of error, for the command line and for a REST caller, is checked on the core.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nb2prod.errors import Nb2prodError
from nb2prod.run.overrides import ParameterError, effective_params, parse_assignment

from conftest import nb2prod_command, run_cli, write_notebook

CELLS = [
    ("C = 1.0  # regularisation\nflags = [1, 2]\nn = 3\nlabel = 'x'", ["parameters"]),
    ("data = [n, len(flags), label]", ["preprocessing"]),
    ("score = C * len(data)", ["training", "metrics"]),
]
DEFAULTS = {"C": 1.0, "flags": [1, 2], "n": 3, "label": "x"}

# 10 zeros, then 6 levels each repeating the one before 10 times: 10**7 items in 400 bytes.
BOMB = "flags: [&a [0,0,0,0,0,0,0,0,0,0]," + "".join(
    f" &{b} [{','.join([f'*{a}'] * 10)}]," for a, b in zip("abcdef", "bcdefg", strict=True)
)
BOMB = BOMB.rstrip(",") + "]\n"
# Measured RSS of `nb2prod run` refusing a parameter is about 60 MB; the bomb took 4.8 GB.
MEMORY_CAP = 1 << 30


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("overrides")
    write_notebook(root / "notebooks" / "params.ipynb", CELLS)
    r = run_cli("export", "notebooks/params.ipynb", cwd=root)
    assert r.returncode == 0, r.stderr
    return root


def run_capped(project: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], int, float]:
    """``nb2prod run ARGS`` under a 1 GiB address-space limit: (result, peak RSS bytes, secs).

    A wrapper process runs the command and reports its child's peak memory, so the figure is
    the command's own and not that of anything else this test process ran.
    """
    wrapper = textwrap.dedent(
        """
        import resource, subprocess, sys
        cap = int(sys.argv[1])
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        r = subprocess.run(sys.argv[2:], capture_output=True, text=True, timeout=120)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        sys.stderr.write(f"\\nPEAK {peak} EXIT {r.returncode}\\n")
        """
    )
    t0 = time.monotonic()
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            wrapper,
            str(MEMORY_CAP),
            *nb2prod_command(),
            "run",
            "pipelines/params",
            "--no-track",
            *args,
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=180,
    )
    elapsed = time.monotonic() - t0
    head, _, tail = r.stderr.rpartition("\nPEAK ")
    peak, _, code = tail.strip().partition(" EXIT ")
    result = subprocess.CompletedProcess(r.args, int(code), r.stdout, head)
    return result, int(peak), elapsed


def assert_refused(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    message = r.stderr.strip()
    assert message.startswith("nb2prod: ") and "\n" not in message, message  # one paragraph
    for needle in needles:
        assert needle in message, (needle, message)


# --- item 9: YAML alias bombs -------------------------------------------------------------------
def test_alias_bomb_file_is_refused_quickly_with_little_memory(project: Path) -> None:
    assert len(BOMB) < 450
    (project / "bomb.yaml").write_text(BOMB)
    r, peak, elapsed = run_capped(project, "-f", "bomb.yaml")
    assert_refused(r, "bomb.yaml", "alias", "Fix:")
    assert elapsed < 30, elapsed
    assert peak < 300 * 2**20, peak
    assert not (project / ".nb2prod" / "runs").exists()  # nothing started, nothing written


def test_recursive_alias_in_p_is_refused_without_a_traceback(project: Path) -> None:
    for value in ("x=&a [*a]", "flags=&a [*a]", "flags=[&a [1], *a]"):
        r = run_cli("run", "pipelines/params", "--no-track", "-p", value, cwd=project)
        assert_refused(r, f"-p '{value}'", "alias", "Fix:")
    assert not (project / ".nb2prod" / "runs").exists()


def test_huge_or_endless_parameter_file_is_refused(project: Path) -> None:
    (project / "huge.yaml").write_text("label: '" + "x" * (2 * 2**20) + "'\n")
    r = run_cli("run", "pipelines/params", "--no-track", "-f", "huge.yaml", cwd=project)
    assert_refused(r, "huge.yaml", "at most 1 MiB", "Fix:")
    r, _, elapsed = run_capped(project, "-f", "/dev/zero")  # a file with no end
    assert_refused(r, "/dev/zero")
    assert elapsed < 30, elapsed


def test_non_finite_numbers_are_refused_so_run_json_stays_json(project: Path) -> None:
    for value in ("C=.nan", "C=-.inf", "flags=[1, .inf]"):
        r = run_cli("run", "pipelines/params", "--no-track", "-p", value, cwd=project)
        assert_refused(r, "finite", "Fix:")
    assert not (project / ".nb2prod" / "runs").exists()


# --- item 28: case-insensitive suggestions ------------------------------------------------------
def test_unknown_parameter_suggestion_ignores_case(project: Path) -> None:
    r = run_cli("run", "pipelines/params", "--no-track", "-p", "c=0.1", cwd=project)
    assert_refused(r, "-p 'c=0.1': unknown parameter `c`. Fix: did you mean `C`?")
    (project / "ci.yaml").write_text("Label: y\n")
    r = run_cli("run", "pipelines/params", "--no-track", "-f", "ci.yaml", cwd=project)
    assert_refused(r, "ci.yaml: unknown parameter `Label`", "did you mean `label`?")


def test_suggestions_on_the_core() -> None:
    cases = {"c": "C", "Flag": "flags", "N": "n", "lable": "label", "LABLE": "label"}
    for key, expected in cases.items():
        with pytest.raises(ParameterError) as info:
            effective_params(DEFAULTS, params={key: 1})
        assert info.value.suggestion == expected, key
        assert f"did you mean `{expected}`?" in info.value.message
    with pytest.raises(ParameterError) as info:
        effective_params(DEFAULTS, params={"zzzz": 1})
    assert info.value.suggestion is None
    assert "Fix: choose from `C`, `flags`, `n`, `label`." in info.value.message


# --- item 30: one error, worded for its reader --------------------------------------------------
def test_type_error_is_worded_for_the_command_line_the_api_and_rest() -> None:
    with pytest.raises(ParameterError) as info:
        effective_params(DEFAULTS, assignments=["C=big"])
    assert info.value.message == (
        "-p 'C=big': parameter `C` is a float (default 1.0), but got the str 'big'. "
        "Fix: give a float, e.g. -p 'C=1.0'"
    )
    with pytest.raises(ParameterError) as info:
        effective_params(DEFAULTS, params={"C": "big"})
    error = info.value
    assert (error.key, error.default, error.value, error.origin) == ("C", 1.0, "big", None)
    # No doubled prefix, no command-line flag for a Python caller.
    assert error.message == (
        "parameter `C` is a float (default 1.0), but got the str 'big'. Fix: give a float, e.g. 1.0"
    )
    assert error.for_request() == (
        '`params.C` must be a number (default 1.0), but got the string "big". '
        'Fix: send a number, e.g. {"params": {"C": 1.0}}'
    )
    with pytest.raises(ParameterError) as info:
        effective_params(DEFAULTS, params={"flags": {"a": 1}})
    assert info.value.for_request() == (
        "`params.flags` must be an array (default [1, 2]), but got an object. "
        'Fix: send an array, e.g. {"params": {"flags": [1, 2]}}'
    )
    with pytest.raises(ParameterError) as info:
        effective_params(DEFAULTS, params={"n": 2.5})
    assert info.value.for_request().startswith("`params.n` must be a whole number (default 3)")


def test_unknown_and_non_finite_for_rest() -> None:
    with pytest.raises(ParameterError) as info:
        effective_params(DEFAULTS, params={"c": 0.1})
    assert info.value.for_request() == (
        "`params.c`: this pipeline has no parameter `c`. Fix: did you mean `C`? "
        'e.g. {"params": {"C": 0.1}}'
    )
    with pytest.raises(ParameterError) as info:
        effective_params({}, params={"c": 0.1})
    assert info.value.for_request() == (
        "`params.c`: this pipeline has no parameters. Fix: leave `params` out."
    )
    with pytest.raises(ParameterError) as info:
        effective_params(DEFAULTS, params={"C": float("inf")})
    assert info.value.for_request() == (
        "`params.C` must be a finite number, but got Infinity: run records and MLflow cannot "
        'hold it. Fix: send a finite number, e.g. {"params": {"C": 1.0}}'
    )
    for text in ("-p 'C=big'", "-p ", "--"):
        assert text not in info.value.for_request()


def test_file_errors_name_the_file_and_give_a_yaml_example(tmp_path: Path) -> None:
    path = tmp_path / "ci.yaml"
    path.write_text("C: big\n")
    with pytest.raises(ParameterError) as info:
        effective_params(DEFAULTS, files=[path])
    assert info.value.message == (
        f"{path}: parameter `C` is a float (default 1.0), but got the str 'big'. "
        f"Fix: give a float, e.g. `C: 1.0`"
    )


def test_values_stay_as_before() -> None:
    effective, changed = effective_params(
        DEFAULTS, assignments=["C=1", "flags=[3, 4]", "label=2024-01-01", "n=~"]
    )
    assert changed == {"C": 1, "flags": [3, 4], "label": "2024-01-01", "n": None}
    assert effective == changed
    assert parse_assignment("label=") == ("label", "")
    with pytest.raises(Nb2prodError, match="expected KEY=VALUE"):
        parse_assignment("novalue")
    json.dumps(effective, allow_nan=False)  # everything accepted is plain JSON

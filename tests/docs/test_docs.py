"""Documented command output is real output: every transcript in README.md and docs/*.md runs
again and must match (scripts/check_docs.py), and the checker itself catches what it must."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from conftest import REPO

CHECKER = REPO / "scripts" / "check_docs.py"


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_docs", CHECKER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_docs"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


check_docs = _load_checker()
PAGES = [p for p in check_docs.default_pages() if check_docs.parse_page(p).commands]


# A page runs for minutes on a busy machine (each tracked run pays MLflow's start-up).
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_documented_output_matches_real_output(page: Path, tmp_path: Path) -> None:
    result = check_docs.run_page(check_docs.parse_page(page), tmp_path)
    rel = page.relative_to(REPO)
    assert not result.drifted, (
        f"{result.report()}\n\nIf the new output is right, update the page with: "
        f"python scripts/check_docs.py --update {rel}"
    )


# --- the checker itself, on small pages of its own -----------------------------------------------
def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent(text), encoding="utf-8")
    return page


def _check(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The checker's command line, as a user runs it."""
    return subprocess.run(
        [sys.executable, str(CHECKER), *args, str(page)],
        capture_output=True,
        text=True,
        timeout=120,
    )


# Prints a fresh run id, duration and timestamp, and the scratch folder's path, each time.
VOLATILE = (
    "python -c \"import os, secrets, time; print(time.strftime('%Y%m%d-%H%M%S-') + "
    "secrets.token_hex(4)[:7], 'in', f'{time.time() % 9:.1f}s', "
    "time.strftime('%Y-%m-%dT%H:%M:%SZ'), os.getcwd() + '/x', secrets.token_hex(32))\""
)


def test_a_changed_message_fails_with_a_diff_and_update_rewrites_it(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        """\
        Intro.

        ```
        $ echo hello; echo oops >&2; exit 3
        hello
        [exit 3]
        $ echo same
        same
        ```
        """,
    )
    r = _check(page)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 of 2 commands drifted" in r.stdout
    assert "+oops" in r.stdout  # stderr is part of the output

    r = _check(page, "--update")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hello\noops\n[exit 3]\n$ echo same\nsame\n```" in page.read_text()
    assert _check(page).returncode == 0


def test_only_what_varies_between_runs_is_normalised(tmp_path: Path) -> None:
    volatile = check_docs.parse_page(_page(tmp_path, f"```\n$ {VOLATILE}\nx\n```\n"))
    result = check_docs.run_page(volatile, tmp_path / "first")
    shown = result.outcomes[0].output[0]
    assert shown.split()[4].startswith("/tmp/docs_run/")  # the scratch folder as the docs show it

    same = _page(tmp_path, f"```\n$ {VOLATILE}\n{shown}\n```\n")
    assert not check_docs.run_page(check_docs.parse_page(same), tmp_path / "again").drifted

    changed = _page(tmp_path, f"```\n$ {VOLATILE}\n{shown.replace(' in ', ' after ')}\n```\n")
    assert check_docs.run_page(check_docs.parse_page(changed), tmp_path / "words").drifted
    bad_exit = _page(tmp_path, f"```\n$ {VOLATILE}\n{shown}\n[exit 1]\n```\n")
    assert check_docs.run_page(check_docs.parse_page(bad_exit), tmp_path / "exit").drifted


def test_ids_are_matched_by_order_of_appearance_and_replaced_in_commands(tmp_path: Path) -> None:
    new_id = "python -c \"import secrets; print('20261122-074521-' + secrets.token_hex(4)[:7])\""
    text = f"""\
        ```
        $ {new_id} | tee id
        20261122-074521-604c3f1
        $ {new_id}
        20261122-074521-aaaaaaa
        $ cat id
        20261122-074521-604c3f1
        $ test "$(cat id)" = 20261122-074521-604c3f1 && echo the same run
        the same run
        ```
        """
    assert _check(_page(tmp_path, text)).returncode == 0
    # Naming the second run where the first one is printed is drift.
    wrong = text.replace(
        "$ cat id\n        20261122-074521-604c3f1", "$ cat id\n        20261122-074521-aaaaaaa"
    )
    r = _check(_page(tmp_path, wrong))
    assert r.returncode == 1 and "-<run 2>" in r.stdout and "+<run 1>" in r.stdout


def test_a_wrong_id_in_one_output_does_not_derail_later_commands(tmp_path: Path) -> None:
    new_id = "python -c \"import secrets; print('20261122-074521-' + secrets.token_hex(4)[:7])\""
    page = _page(
        tmp_path,
        f"""\
        ```
        $ {new_id}
        20261122-074521-604c3f1
        $ echo no run here
        20261122-111111-1111111
        $ {new_id} > b && cat b
        20261122-074521-aaaaaaa
        $ test "$(cat b)" = 20261122-074521-aaaaaaa && echo the same run
        the same run
        ```
        """,
    )
    result = check_docs.run_page(check_docs.parse_page(page), tmp_path / "scratch")
    # The wrong id drifts (and so do the numbers after it), but the last command still gets the
    # real id of the run the docs name there: it learnt it from the output above it.
    assert result.outcomes[1].drifted
    assert not result.outcomes[3].drifted, result.report()


def test_progress_lines_of_side_by_side_steps_may_come_in_any_order(tmp_path: Path) -> None:
    lines = [
        "[   1.0s] … prepare  running",
        "[   1.5s] ✓ prepare  succeeded in 0.5s",
        "[   1.5s] … a        running",
        "[   1.6s] … b        running",
        "[   2.0s] ✓ a        succeeded in 0.5s",
        "[   2.1s] ✓ b        succeeded in 0.5s",
    ]
    printed = "printf '%s\\n' " + " ".join(f"'{line}'" for line in lines)
    swapped = [lines[0], lines[1], lines[3], lines[2], lines[5], lines[4]]
    page = _page(tmp_path, "```\n$ " + printed + "\n" + "\n".join(swapped) + "\n```\n")
    assert _check(page).returncode == 0
    # A step's own lines keep their order.
    reordered = [lines[1], lines[0], *lines[2:]]
    page = _page(tmp_path, "```\n$ " + printed + "\n" + "\n".join(reordered) + "\n```\n")
    assert _check(page).returncode == 1


def test_hidden_steps_run_in_order_and_skipped_blocks_do_not(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        """\
        <!-- $ echo one > file
        $ cat notebooks/breast_cancer.ipynb > /dev/null && echo two >> file -->

        <!-- transcript: skip (would never end) -->
        ```
        $ sleep 1000
        ```

        ```
        $ cat file
        one
        two
        ```

        <!-- $ false -->
        """,
    )
    result = check_docs.run_page(check_docs.parse_page(page), tmp_path / "scratch")
    assert result.page.skipped == 1
    assert [o.command.text for o in result.drifted] == ["false"]  # a failing hidden step fails
    assert "hidden set-up command `false` exited 1" in result.report()


def test_update_keeps_markdown_valid_and_survives_edits_made_meanwhile(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        """\
        ```
        $ printf '~~~\\n```sh\\n```\\n'
        old
        ```

        Prose.
        """,
    )
    result = check_docs.run_page(check_docs.parse_page(page), tmp_path / "scratch")
    # Someone edits the prose while the page runs; the update keeps their edit.
    edited = page.read_text().replace("Prose.", "Better prose.")
    text, lost = check_docs.updated_text(result, edited)
    assert lost == 0
    assert text == "````\n$ printf '~~~\\n```sh\\n```\\n'\n~~~\n```sh\n```\n````\n\nBetter prose.\n"
    page.write_text(text)
    assert _check(page).returncode == 0


def test_update_never_rewrites_the_real_output_with_the_old_ids(tmp_path: Path) -> None:
    """A hash that did not change (the same data) may stand for another value on the old page:
    the new output keeps its real ids, and only the rest of the page is mapped to them."""
    h1, h2, h3 = ("1" * 64, "2" * 64, "3" * 64)
    page = _page(
        tmp_path,
        f"""\
        ```
        $ python -c "print('new'); print('2' * 64); print('3' * 64)"
        old
        {h1}
        {h2}
        ```

        The first is {h1}.
        """,
    )
    result = check_docs.run_page(check_docs.parse_page(page), tmp_path / "scratch")
    assert result.drifted
    text, lost = check_docs.updated_text(result, page.read_text())
    assert lost == 0
    assert f"new\n{h2}\n{h3}\n```" in text  # not {h3} twice
    assert f"The first is {h2}." in text
    page.write_text(text)
    assert _check(page).returncode == 0


def test_a_malformed_page_is_refused(tmp_path: Path) -> None:
    r = _check(_page(tmp_path, "<!-- transcript: skip (why) -->\nProse.\n```\n$ true\n```\n"))
    assert r.returncode == 2 and "skip marker" in r.stderr


def test_a_command_that_hangs_is_stopped_with_everything_it_started(tmp_path: Path) -> None:
    page = _page(tmp_path, "```\n$ sleep 4321 & sleep 4322; echo never\nnever\n```\n")
    result = check_docs.run_page(check_docs.parse_page(page), tmp_path / "scratch", timeout=2)
    assert result.outcomes[0].output == ["", "(timed out after 2s)"]
    leftovers = [
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and b"sleep\x00432" in _cmdline(p)
    ]
    assert leftovers == []


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""

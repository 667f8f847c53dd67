"""Run the command transcripts in README.md and docs/*.md and compare them with real output.

    python scripts/check_docs.py                 # check every page; a unified diff of what drifted
    python scripts/check_docs.py docs/cli.md     # only these pages
    python scripts/check_docs.py --update        # rewrite the pages that drifted from real output
    python scripts/check_docs.py --update --refresh   # rewrite every page (on a quiet machine)

Exit code: 0 when every transcript matches, 1 when one drifted (``--update``: 0 once the pages
are rewritten, 1 when some drift needs a person: a hidden set-up command failed, a command
names a run no output shows, a block was edited meanwhile), 2 for a malformed page. Each page
ends with its three slowest commands. tests/docs/test_docs.py runs the check, one test per page.

Conventions (also in docs/testing.md):

- A **transcript** is a fenced code block whose first line starts with ``$ ``. Each ``$ `` line
  is a command, run with ``bash -c``; a command line ending in `` \\`` continues on the next
  line, and a here-document (``<<'EOF'``) runs to its end marker. The lines after a command, up
  to the next ``$ `` line, are its expected output, stdout and stderr together as a terminal
  shows them (Python runs unbuffered), and an optional last line ``[exit N]`` its exit code.
  Without ``[exit N]`` the command must exit 0.
- Each page runs top to bottom in its own fresh scratch folder holding a copy of the
  repository's ``notebooks/``, so later commands see what earlier ones did. The environment is
  the caller's without ``MLFLOW_*``, ``NB2PROD_*`` (but the test session marker),
  ``GITHUB_*`` and ``CI``, with ``COLUMNS=80``; ``$DOCS_REPO`` is the repository (for files
  such as ``$DOCS_REPO/docs/examples/ci.yaml``).
- ``<!-- $ command -->`` (one or more ``$ `` commands, possibly over several lines) is a hidden
  set-up step: run in order, not shown, and it must exit 0. ``<!-- transcript: skip (reason)
  -->`` right before a transcript leaves that block unrun (a long-running server, an
  interactive UI).
- Before comparing, both sides are normalised for what legitimately differs between runs, and
  nothing else: the scratch folder's path (docs show ``/tmp/docs_run``; a command may use it
  too), run ids, MLflow ids and hashes (numbered in order of appearance on the page, so "reused
  from" must still name the right run), timestamps, durations (``8.9s``, ``6.5 s``,
  ``time="0.535"`` in JUnit, ``"duration"`` in JSON, with the padding before them), process ids
  (``"pid"`` in JSON), the sizes of run folders (``12.3 MB``, ``(12345 bytes)``,
  ``"size_bytes"`` in JSON), the order of the progress lines
  of steps that run side by side (each step's own lines keep their order), trailing spaces and
  trailing blank lines. A run id in a command is replaced by the real id it stands for.
- ``--update`` rewrites the outputs of each page on which one drifted (and ``[exit N]`` where
  the page shows it or the code is not 0), all of them, so that a page shows one session, and
  replaces the ids elsewhere on the page (in prose, say) by the new ones. Pages that match are
  left alone. It reads a page again just before writing it and leaves alone an output that was
  edited meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHOWN_SCRATCH = "/tmp/docs_run"  # the scratch folder's path as the docs show it
COMMAND_TIMEOUT = 600.0

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})")
EXIT_LINE = re.compile(r"^\[exit (\d+)\]$")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
SKIP = re.compile(r"^transcript:\s*skip\b")

# Values that differ between runs and are numbered per page, in order of appearance: the same
# value gets the same number, so the docs must refer to the same run where the output does.
TOKENS: list[tuple[str, re.Pattern[str]]] = [
    ("run", re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{7}\b")),
    ("sha256", re.compile(r"\b[0-9a-f]{64}\b")),
    ("sha1", re.compile(r"\b[0-9a-f]{40}\b")),
    ("mlflow-id", re.compile(r"\b[0-9a-f]{32}\b")),
    ("hash12", re.compile(r"\b[0-9a-f]{12}\b")),
]
TIMESTAMP = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\b\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}"
)
# A duration as nb2prod prints it (``0.7s``, ``[  10.5s]``, ``6.5 s`` in Markdown summaries),
# with the padding before it, and as JUnit reports carry it (``time="0.535"``).
DURATION = re.compile(r" *(?<![\w.])(?:\d+(?:\.\d+)?(?:ms|s)|\d+\.\d+ s)(?![\w])")
XML_TIME = re.compile(r'\btime="\d+(?:\.\d+)?"')
# Durations, process ids and run folder sizes in JSON records (run.json, `nb2prod runs --json`).
JSON_NUMBER = re.compile(r'"(duration|pid|size_bytes)": \d+(?:\.\d+)?')
# Sizes of run folders (`nb2prod runs`, `nb2prod gc`), with the padding before them: a run
# folder holds timings and timestamps, so its size differs by a few bytes from run to run.
SIZE = re.compile(r" *(?<![\w.])\d+(?:\.\d)? (?:B|kB|MB|GB|TB)\b|\b\d+ bytes\b")
# A step's progress line, ``[   1.5s] ✓ training  succeeded...`` (``[ <t>]`` once normalised).
PROGRESS = re.compile(r"^\s*\[(?: <t>|\s*\d+(?:\.\d+)?s)\] \S (\w+) ")


@dataclass
class Command:
    """One ``$`` command of a page, shown in a transcript or hidden in a comment."""

    text: str
    line: int  # 1-based line of the ``$`` in the page
    hidden: bool = False
    expected: list[str] = field(default_factory=list)
    exit_code: int | None = None  # as the page shows it; None: not shown (must be 0)
    out_start: int = 0  # 0-based page lines [out_start, out_end) hold the output and [exit N]
    out_end: int = 0
    indent: str = ""
    block: tuple[int, int] = (0, 0)  # 0-based page lines of the block's opening and closing fence


@dataclass
class Page:
    path: Path
    lines: list[str]
    commands: list[Command]  # in page order, hidden ones included, skipped blocks left out
    skipped: int = 0


class PageError(Exception):
    """A page that breaks the conventions above."""


def parse_page(path: Path, text: str | None = None) -> Page:
    lines = (path.read_text(encoding="utf-8") if text is None else text).split("\n")
    commands: list[Command] = []
    skipped = 0
    skip_pending: int | None = None  # line of a skip marker waiting for its block
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        fence = FENCE.match(lines[i])
        if stripped.startswith("<!--"):
            end = _comment_end(lines, i, path)
            comment = _comment_body(lines[i : end + 1])
            if SKIP.match(comment):
                skip_pending = i + 1
            elif comment.startswith("$ "):
                commands += _hidden_commands(comment, i + 1)
            i = end + 1
            continue
        if fence:
            end = _fence_end(lines, i, fence, path)
            indent = fence.group("indent")
            body = [
                line[len(indent) :] if line.startswith(indent) else line.lstrip()
                for line in lines[i + 1 : end]
            ]
            if body and body[0].startswith("$ "):
                if skip_pending is not None:
                    skipped += 1
                else:
                    commands += _transcript_commands(body, (i, end), indent, path)
            elif skip_pending is not None:
                raise PageError(
                    f"{path}:{skip_pending}: a skip marker before a block that is not a transcript"
                )
            skip_pending = None
            i = end + 1
            continue
        if stripped and skip_pending is not None:
            raise PageError(
                f"{path}:{skip_pending}: a skip marker must come right before a transcript block"
            )
        i += 1
    return Page(path, lines, commands, skipped)


def _comment_end(lines: list[str], start: int, path: Path) -> int:
    for j in range(start, len(lines)):
        if "-->" in lines[j]:
            return j
    raise PageError(f"{path}:{start + 1}: an HTML comment that never ends")


def _comment_body(lines: list[str]) -> str:
    text = "\n".join(lines).strip()
    return text[len("<!--") : text.rindex("-->")].strip()


def _fence_end(lines: list[str], start: int, fence: re.Match[str], path: Path) -> int:
    marker = fence.group("fence")
    for j in range(start + 1, len(lines)):
        stripped = lines[j].strip()
        if stripped.startswith(marker) and not stripped.strip(marker[0]):
            return j
    raise PageError(f"{path}:{start + 1}: a code block that never ends")


def _command_end(body: list[str], start: int) -> int:
    """Index of the last line of the command starting at ``body[start]``: continuation lines
    (`` \\``) and here-documents belong to it."""
    j = start
    while body[j].endswith("\\") and j + 1 < len(body):
        j += 1
    heredoc = HEREDOC.search("\n".join(body[start : j + 1]))
    if heredoc:
        while j + 1 < len(body) and body[j].strip() != heredoc.group(2):
            j += 1
    return j


def _hidden_commands(body: str, line: int) -> list[Command]:
    rows = body.split("\n")
    commands = []
    i = 0
    while i < len(rows):
        if rows[i].startswith("$ "):
            j = _command_end(rows, i)
            text = "\n".join(rows[i : j + 1])[2:]
            commands.append(Command(text, line + i, hidden=True))
            i = j
        i += 1
    return commands


def _transcript_commands(
    body: list[str], block: tuple[int, int], indent: str, path: Path
) -> list[Command]:
    """The commands of a transcript: ``body`` holds its lines (de-indented), ``block`` the
    0-based page lines of its fences."""
    first = block[0] + 1
    commands: list[Command] = []
    i = 0
    while i < len(body):
        if not body[i].startswith("$ "):
            raise PageError(f"{path}:{first + i + 1}: transcript output before any command")
        j = _command_end(body, i)
        k = j + 1
        while k < len(body) and not body[k].startswith("$ "):
            k += 1
        output = body[j + 1 : k]
        exit_line = EXIT_LINE.match(output[-1].strip()) if output else None
        if exit_line:
            output = output[:-1]
        text = "\n".join(body[i : j + 1])[2:]
        exit_code = int(exit_line.group(1)) if exit_line else None
        commands.append(
            Command(text, first + i + 1, False, output, exit_code, first + j + 1, first + k, indent)
        )
        commands[-1].block = block
        i = k
    return commands


class Numbering:
    """Numbers the run-dependent values of one side of a page (the docs, or the real output) in
    order of appearance."""

    def __init__(self) -> None:
        self.number: dict[str, dict[str, int]] = {kind: {} for kind, _ in TOKENS}

    def label(self, kind: str, value: str) -> str:
        seen = self.number[kind]
        seen.setdefault(value, len(seen) + 1)
        return f"<{kind} {seen[value]}>"

    def value_of(self, kind: str, number: int) -> str | None:
        return next((v for v, n in self.number[kind].items() if n == number), None)


def normalise(lines: Iterable[str], numbering: Numbering) -> list[str]:
    out = []
    for line in lines:
        line = TIMESTAMP.sub("<time>", line)
        for kind, pattern in TOKENS:
            line = pattern.sub(lambda m, k=kind: numbering.label(k, m.group()), line)  # type: ignore[misc]
        line = XML_TIME.sub('time="<t>"', line)
        line = JSON_NUMBER.sub(r'"\1": <n>', line)
        line = SIZE.sub(" <size>", line)
        out.append(DURATION.sub(" <t>", line).rstrip())
    while out and not out[-1]:
        out.pop()
    return out


def _sort_side_by_side(lines: list[str]) -> list[str]:
    """Steps that run side by side report in any order: sort each stretch of progress lines by
    step, keeping each step's own lines in order."""
    out: list[str] = []
    stretch: list[tuple[str, str]] = []
    for line in [*lines, ""]:
        m = PROGRESS.match(line)
        if m:
            stretch.append((m.group(1), line))
            continue
        out += [text for _, text in sorted(stretch, key=lambda pair: pair[0])]
        stretch = []
        out.append(line)
    return out[:-1]


@dataclass
class Outcome:
    command: Command
    output: list[str]  # real output, the scratch path shown as in the docs
    exit_code: int
    seconds: float
    drifted: bool
    diff: str = ""
    fixable: bool = True  # whether --update can fix it by writing the real output


@dataclass
class PageResult:
    page: Page
    outcomes: list[Outcome]
    replacements: dict[str, str]  # value in the docs -> real value, for --update
    seconds: float

    @property
    def drifted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.drifted]

    def report(self) -> str:
        name = _display(self.page.path)
        if not self.drifted:
            return f"{name}: {len(self.outcomes)} commands match ({self.seconds:.0f}s)"
        parts = [f"{name}: {len(self.drifted)} of {len(self.outcomes)} commands drifted:"]
        parts += [o.diff for o in self.drifted]
        return "\n".join(parts)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def clean_env() -> dict[str, str]:
    """The caller's environment without what would change nb2prod's output or where it writes."""
    keep = os.environ.get("NB2PROD_TEST_SESSION")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "NB2PROD_", "GITHUB_", "PYTEST_"))
        and k not in ("CI", "COLUMNS", "LINES")
    }
    if keep:
        env["NB2PROD_TEST_SESSION"] = keep  # the test session's marker for leftover checks
    env.update(
        COLUMNS="80",
        PYTHONUNBUFFERED="1",
        PYTHONIOENCODING="utf-8",
        LC_ALL="C.UTF-8",
        DOCS_REPO=str(REPO),
        # The nb2prod of the Python running this check, not whatever else is on the PATH.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    return env


def run_page(page: Page, scratch: Path, timeout: float = COMMAND_TIMEOUT) -> PageResult:
    """Runs the page's commands in ``scratch`` (which gets a copy of notebooks/) and compares."""
    started = time.monotonic()
    shutil.copytree(REPO / "notebooks", scratch / "notebooks")
    env = clean_env()
    paths = sorted({str(scratch), os.path.realpath(scratch)}, key=len, reverse=True)
    docs, real = Numbering(), Numbering()
    pairs: dict[str, str] = {}  # id in the docs -> the real id in the same place of an output
    outcomes = []
    for command in page.commands:
        text = _real_command(command.text, scratch, _id_map(pairs, docs, real))
        unknown = _unknown_runs(command.text, docs)
        if unknown:
            outcomes.append(_unknown_run(page, command, unknown))
            continue
        t0 = time.monotonic()
        raw, code = _run(text, scratch, env, timeout)
        seconds = time.monotonic() - t0
        for path in paths:
            raw = raw.replace(path, SHOWN_SCRATCH)
        output = [line.rstrip() for line in raw.split("\n")]
        while output and not output[-1]:
            output.pop()
        outcomes.append(_compare(page, command, output, code, seconds, docs, real))
        if not command.hidden:
            _pair_ids(pairs, command.expected, output)
    ids = _id_map(pairs, docs, real)
    swaps = {old: new for old, new in ids.items() if old != new}
    return PageResult(page, outcomes, swaps, time.monotonic() - started)


def _run(command: str, cwd: Path, env: dict[str, str], timeout: float) -> tuple[str, int]:
    """Output (stdout and stderr as one stream) and exit code of ``bash -c command``. On a
    timeout the command's whole process group is killed, kernels included, so nothing is left
    running."""
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return out.decode("utf-8", "replace"), proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return out.decode("utf-8", "replace") + f"\n(timed out after {timeout:.0f}s)", -1


def _pair_ids(pairs: dict[str, str], expected: list[str], actual: list[str]) -> None:
    """Learns which real id stands for which id in the docs: the ones in the same place of an
    output (side-by-side steps sorted), where the output shows as many of them as the docs."""
    want, got = _sort_side_by_side(expected), _sort_side_by_side(actual)
    for _, pattern in TOKENS:
        shown = [m.group() for line in want for m in pattern.finditer(line)]
        found = [m.group() for line in got for m in pattern.finditer(line)]
        if len(shown) == len(found):
            for old, new in zip(shown, found, strict=True):
                pairs.setdefault(old, new)


def _id_map(pairs: dict[str, str], docs: Numbering, real: Numbering) -> dict[str, str]:
    """Each id the docs showed so far -> the real id it stands for: learnt from the outputs,
    else the real id with the same number (order of appearance)."""
    out = {}
    for kind, _ in TOKENS:
        for value, number in docs.number[kind].items():
            new = pairs.get(value) or real.value_of(kind, number)
            if new:
                out[value] = new
    return out


def _real_command(text: str, scratch: Path, ids: dict[str, str]) -> str:
    """The command as it must run here: the scratch folder for ``/tmp/docs_run``, and for each
    id the docs showed earlier, the real id that took its place."""
    text = text.replace(SHOWN_SCRATCH, str(scratch))
    for _, pattern in TOKENS:
        text = pattern.sub(lambda m: ids.get(m.group(), m.group()), text)
    return text


def _unknown_runs(text: str, docs: Numbering) -> list[str]:
    """Run ids a command names that no earlier output on the page showed: the command cannot
    stand for a real run."""
    pattern = dict(TOKENS)["run"]
    return [m.group() for m in pattern.finditer(text) if m.group() not in docs.number["run"]]


def _unknown_run(page: Page, command: Command, unknown: list[str]) -> Outcome:
    why = (
        f"{_display(page.path)}:{command.line}: `{command.text}` names run {', '.join(unknown)}, "
        "which no earlier output on the page shows; use the id of a run shown above"
    )
    return Outcome(command, list(command.expected), command.exit_code or 0, 0.0, True, why, False)


def _compare(
    page: Page,
    command: Command,
    output: list[str],
    code: int,
    seconds: float,
    docs: Numbering,
    real: Numbering,
) -> Outcome:
    name = _display(page.path)
    if command.hidden:
        drifted = code != 0
        diff = (
            f"{name}:{command.line}: hidden set-up command `{command.text}` exited {code}:\n"
            + "\n".join(output)
        )
        return Outcome(command, output, code, seconds, drifted, diff if drifted else "", False)
    want = normalise(command.expected, docs) + [f"[exit {command.exit_code or 0}]"]
    got = normalise(output, real) + [f"[exit {code}]"]
    if _sort_side_by_side(want) == _sort_side_by_side(got):
        return Outcome(command, output, code, seconds, False)
    diff = "\n".join(
        difflib.unified_diff(
            want,
            got,
            f"{name}:{command.line} (docs)",
            f"$ {command.text} (real output)",
            lineterm="",
        )
    )
    return Outcome(command, output, code, seconds, True, diff)


def updated_text(result: PageResult, text: str) -> tuple[str, int]:
    """``text`` (the page as it is now: it may have been edited since it ran) with every output
    replaced by the real one, so that the page shows one session (the durations in a summary
    match the run above it), and the ids elsewhere on the page by the real ids they stand for.
    Also returns how many drifted outputs could not be placed because they were edited
    meanwhile."""
    fresh: dict[tuple[str, tuple[str, ...], int | None], list[Command]] = {}
    for command in parse_page(result.page.path, text).commands:
        fresh.setdefault(_key(command), []).append(command)
    if result.replacements:
        # Before the real outputs go in: they already hold the real ids, and an id that did not
        # change (the hash of the same data) can stand for another value in the old page.
        swaps = result.replacements
        pattern = re.compile("|".join(map(re.escape, sorted(swaps, key=len, reverse=True))))
        text = pattern.sub(lambda m: swaps[m.group()], text)
    lines = text.split("\n")
    placed, lost = [], 0
    for outcome in result.outcomes:
        if outcome.command.hidden or not outcome.fixable:
            continue
        same = fresh.get(_key(outcome.command))
        if not same:
            lost += outcome.drifted
            continue
        placed.append(Outcome(same.pop(0), outcome.output, outcome.exit_code, 0.0, True))
    for outcome in placed:
        _fit_fence(lines, outcome)
    for outcome in sorted(placed, key=lambda o: -o.command.out_start):
        command = outcome.command
        new = list(outcome.output)
        if command.exit_code is not None or outcome.exit_code != 0:
            new.append(f"[exit {outcome.exit_code}]")
        lines[command.out_start : command.out_end] = [
            (command.indent + line) if line else "" for line in new
        ]
    return "\n".join(lines), lost


def _key(command: Command) -> tuple[str, tuple[str, ...], int | None]:
    return command.text, tuple(command.expected), command.exit_code


def _fit_fence(lines: list[str], outcome: Outcome) -> None:
    """Lengthens the block's fences when the new output holds a line that would close them
    (a diff of a Markdown file, say)."""
    opening, closing = outcome.command.block
    fence = FENCE.match(lines[opening])
    assert fence, lines[opening]
    current = fence.group("fence")
    char = current[0]
    longest = (
        len(m.group())
        for line in outcome.output
        for m in re.finditer(re.escape(char) + "{3,}", line)
    )
    needed = max(longest, default=0) + 1
    if needed > len(current):
        for index in (opening, closing):
            lines[index] = lines[index].replace(current, char * needed, 1)


def default_pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def check(
    paths: list[Path],
    update: bool = False,
    jobs: int = 1,
    timeout: float = COMMAND_TIMEOUT,
    echo: Callable[[str], None] = print,
    refresh: bool = False,
) -> int:
    """Checks (or with ``update``, rewrites) the pages; ``refresh`` rewrites matching pages too."""
    pages = [p for p in map(parse_page, paths) if p.commands]
    work = Path(tempfile.mkdtemp(prefix="check_docs_"))
    try:

        def one(page: Page) -> PageResult:
            scratch = work / page.path.stem
            scratch.mkdir()
            return run_page(page, scratch, timeout)

        with ThreadPoolExecutor(max(1, jobs)) as pool:
            results = list(pool.map(one, pages))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    status = 0
    for result in results:
        echo(result.report())
        if update and (result.drifted or refresh):
            status |= not _update(result, echo)
        elif result.drifted:
            status = 1
        slow = sorted(result.outcomes, key=lambda o: -o.seconds)[:3]
        echo("  slowest: " + "; ".join(f"{o.seconds:.1f}s `{o.command.text[:60]}`" for o in slow))
    return status


def _update(result: PageResult, echo: Callable[[str], None]) -> bool:
    """Rewrites the outputs of a page; False when some drift needs a person."""
    name = _display(result.page.path)
    if any(o.command.hidden for o in result.drifted):
        echo(f"{name}: not rewritten: a hidden set-up command failed, so later outputs are wrong")
        return False
    # Read the page again right before writing: others may have edited it meanwhile.
    text, lost = updated_text(result, result.page.path.read_text(encoding="utf-8"))
    result.page.path.write_text(text, encoding="utf-8")
    echo(f"{name}: rewrote its outputs")
    if lost:
        echo(f"{name}: {lost} outputs were edited meanwhile and left alone: run --update again")
    return not lost and all(o.fixable for o in result.drifted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "pages", nargs="*", type=Path, help="Markdown pages (default: README.md, docs/*.md)"
    )
    parser.add_argument(
        "--update", action="store_true", help="rewrite drifted outputs from real output"
    )
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="with --update, rewrite matching pages too (fresh timings from a quiet machine)",
    )
    parser.add_argument("--jobs", "-j", type=int, default=1, help="pages run at once (default 1)")
    parser.add_argument(
        "--timeout", type=float, default=COMMAND_TIMEOUT, help="seconds per command"
    )
    args = parser.parse_args(argv)
    try:
        pages = args.pages or default_pages()
        return check(pages, args.update, args.jobs, args.timeout, refresh=args.refresh)
    except PageError as e:
        print(f"check_docs: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

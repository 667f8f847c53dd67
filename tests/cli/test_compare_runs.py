"""``nb2prod compare`` end to end: two real runs of a tiny exported pipeline, compared."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import TINY_CELLS, run_cli, write_notebook

HOSTILE = "<script>alert(1)</script>"
RUN_ID = re.compile(r"\(run (\d{8}-\d{6}-[0-9a-f]{7})\)")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A project folder with two successful runs: the defaults, then factor=3 and a label
    that is HTML."""
    root = tmp_path_factory.mktemp("compare")
    write_notebook(root / "tiny.ipynb", TINY_CELLS)
    assert run_cli("export", "tiny.ipynb", cwd=root).returncode == 0
    ids = []
    for extra in ([], ["-p", "factor=3", "-p", f"label={HOSTILE}"]):
        r = run_cli("run", "pipelines/tiny", "--no-track", *extra, cwd=root)
        assert r.returncode == 0, r.stderr
        found = RUN_ID.search(r.stdout + r.stderr)
        assert found, r.stdout
        ids.append(found.group(1))
    return root, ids[0], ids[1]


def test_text_shows_differing_parameters_and_metric_deltas(project: tuple[Path, str, str]) -> None:
    root, first, second = project
    r = run_cli("compare", first, "pipelines/tiny", cwd=root)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"A  {first}  tiny v1  succeeded" in out
    assert f"B  {second}  tiny v1  succeeded" in out
    assert "(pipelines/tiny: newest successful run of v1)" in out
    assert re.search(r"factor +2\.0 +3\n", out)
    assert f'"{HOSTILE}"' in out
    assert " n " not in out and "delay" not in out  # unchanged parameters are left out
    assert re.search(r"score +6 +9 \(\+3 ↑\)", out)
    assert re.search(r"count +5 +5 \(=\)", out)
    assert "Step code against A (tiny v1): no step's code changed." in out


def test_json_parses(project: tuple[Path, str, str]) -> None:
    root, first, second = project
    r = run_cli("compare", "pipelines/tiny/v1", first, "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["schema_version"] == 1
    assert [run["id"] for run in data["runs"]] == [second, first]
    params = {p["name"]: p["values"] for p in data["parameters"]}
    assert params == {"factor": [3, 2.0], "label": [HOSTILE, "x"]}
    score = next(m for m in data["metrics"] if m["name"] == "score")
    assert score["values"] == [9.0, 6.0] and score["deltas"] == [None, -3.0]
    assert [row["changes"] for row in data["code"]] == [["same", "same"]] * 3
    assert data["gates"] == [] and data["gate_status"] == [None, None]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k == "href"]


def test_html_is_a_valid_self_contained_page(project: tuple[Path, str, str]) -> None:
    root, first, second = project
    r = run_cli("compare", first, second, "--html", "reports/compare.html", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "Wrote reports/compare.html" in r.stdout
    text = (root / "reports" / "compare.html").read_text("utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    assert page.tags[0] == "html" and "svg" in page.tags
    assert "script" not in page.tags and HOSTILE not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    for link in page.links:
        assert (root / "reports" / link).is_file(), link  # relative to the page, and there
    # Each step's HTML report, which every run renders (the executed notebook when it has none).
    assert f"../.nb2prod/runs/{first}/steps/training/report.html" in page.links
    assert not list((root / "reports").glob(".*.tmp"))


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["pipelines/tiny"], ["needs at least two runs"]),
        (["pipelines/tiny", "20991231-000000-000abcd"], ["`20991231-000000-000abcd` names no run"]),
        (["pipelines/tiny", "pipelines/tiny/v4"], ["`tiny` v4 has no successful run"]),
        (["champion", "pipelines/tiny"], ["pipeline `tiny` has no champion"]),
        (["champion", "champion"], ["`champion` alone"]),
        (["nothing", "pipelines/tiny"], ["`nothing` names no run", "pipelines/<name>/vN"]),
    ],
)
def test_bad_arguments_exit_2_with_one_paragraph(
    project: tuple[Path, str, str], arguments: list[str], fragments: list[str]
) -> None:
    root = project[0]
    r = run_cli("compare", *arguments, cwd=root)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Fix:" in r.stderr
    assert r.stderr.count("\n") == 1 and r.stdout == ""
    for fragment in fragments:
        assert fragment in r.stderr

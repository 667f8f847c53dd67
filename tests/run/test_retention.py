"""`nb2prod gc`: removing old run folders, through the real CLI.

Most tests write run records by hand (a run folder is a contract, see docs/running.md), so
that twenty runs cost nothing; the cache tests use real runs of a tiny pipeline, whose cached
steps share files by hard links.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from conftest import TINY_CELLS, run_cli, tree, write_notebook

pytestmark = pytest.mark.timeout(300)
DAY = 86400.0


def fake_run(
    home: Path,
    age_days: float,
    *,
    pipeline: str = "tiny",
    status: str = "succeeded",
    pid: int | None = None,
    size: int = 100,
) -> str:
    """A finished run folder as the runner leaves it, started ``age_days`` ago (id and record
    agree), with one read-only output of ``size`` bytes."""
    at = datetime.now(timezone.utc) - timedelta(days=age_days)
    run_id = f"{at:%Y%m%d-%H%M%S}-{at.microsecond // 1000:03d}{os.urandom(2).hex()}"
    folder = home / "runs" / run_id
    out = folder / "steps" / "preprocessing" / "outputs"
    out.mkdir(parents=True)
    (out / "data.json").write_bytes(b"x" * size)
    (out / "data.json").chmod(0o444)
    record = {
        "id": run_id,
        "pipeline": pipeline,
        "version": 1,
        "status": status,
        "pid": pid,
        "started_at": at.isoformat().replace("+00:00", "Z"),
        "steps": {"preprocessing": {"state": "succeeded", "outputs": {"data": "0" * 64}}},
    }
    (folder / "run.json").write_text(json.dumps(record))
    return run_id


def run_ids(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "runs").iterdir())


def bytes_of(home: Path, ids: list[str]) -> int:
    """Bytes of the files of these runs (none hard-linked) and of their job files."""
    files = [p for i in ids for p in (home / "runs" / i).rglob("*")]
    files += [p for i in ids for p in (home / "jobs").glob(f"{i}.*")]
    return sum(p.stat().st_size for p in files if p.is_file())


def gc(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("gc", *args, cwd=project, env=env)


def test_default_keeps_the_newest_20_per_pipeline_and_keep_sets_how_many(tmp_path: Path) -> None:
    home = tmp_path / ".nb2prod"
    tiny = [fake_run(home, 30 - i) for i in range(23)]  # oldest first
    other = [fake_run(home, 5, pipeline="other") for _ in range(2)]
    jobs = home / "jobs"
    jobs.mkdir()
    for suffix in (".json", ".log"):  # the server's files of a run it was asked for
        (jobs / f"{tiny[0]}{suffix}").write_text(json.dumps({"pipeline": "tiny", "pid": 1}))
    freed = bytes_of(home, tiny[:3])

    r = gc(tmp_path)
    assert r.returncode == 0, r.stderr
    assert run_ids(home) == sorted(tiny[3:] + other)
    assert not list(jobs.iterdir())
    assert [line.split()[:2] for line in r.stdout.splitlines()[:3]] == [
        ["removed", i] for i in reversed(tiny[:3])
    ]
    assert f"freed 1.2 kB ({freed} bytes) by removing 3 of 25 runs." in r.stdout, r.stdout

    r = gc(tmp_path, "pipelines/tiny", "--keep", "5")  # a pipeline's folder names it too
    assert r.returncode == 0, r.stderr
    assert run_ids(home) == sorted(tiny[-5:] + other)
    assert "by removing 15 of 20 runs of tiny." in r.stdout
    assert gc(tmp_path, "other", "--keep", "0").returncode == 0
    assert run_ids(home) == sorted(tiny[-5:])


def test_older_than_removes_only_old_runs_beyond_the_newest_n(tmp_path: Path) -> None:
    home = tmp_path / ".nb2prod"
    d40, d10, d5, d1 = (fake_run(home, age) for age in (40, 10, 5, 1))
    r = gc(tmp_path, "--older-than", "7", "--keep", "3")  # d10 is among the newest 3: stays
    assert r.returncode == 0, r.stderr
    assert run_ids(home) == sorted([d10, d5, d1])
    r = gc(tmp_path, "tiny", "--older-than", "7", "--keep", "0")  # age alone decides
    assert r.returncode == 0, r.stderr
    assert run_ids(home) == sorted([d5, d1])
    # The age is the record's started_at; without one, the record's modification time.
    record = home / "runs" / d5 / "run.json"
    data = json.loads(record.read_text())
    del data["started_at"]
    record.write_text(json.dumps(data))
    os.utime(record, (time.time() - 9 * DAY, time.time() - 9 * DAY))
    assert gc(tmp_path, "--older-than", "7", "--keep", "0").returncode == 0
    assert run_ids(home) == [d1]


def test_dry_run_prints_the_same_and_removes_nothing(tmp_path: Path) -> None:
    home = tmp_path / ".nb2prod"
    ids = [fake_run(home, 3 - i, size=1500) for i in range(3)]
    before = tree(home)
    freed = bytes_of(home, ids[:2])
    r = gc(tmp_path, "--keep", "1", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert tree(home) == before
    assert f"would remove {ids[1]}" in r.stdout and f"would remove {ids[0]}" in r.stdout
    assert f"would free 3.6 kB ({freed} bytes) by removing 2 of 3 runs." in r.stdout, r.stdout
    real = gc(tmp_path, "--keep", "1")
    assert real.stdout.replace("would remove", "removed").replace(
        "would free", "freed"
    ) == r.stdout.replace("would remove", "removed").replace("would free", "freed")
    assert run_ids(home) == [ids[2]]


def test_a_running_run_is_never_removed(tmp_path: Path) -> None:
    home = tmp_path / ".nb2prod"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.1)
        running = fake_run(home, 0, status="running", pid=sleeper.pid)
        dead = fake_run(home, 0, status="running", pid=None)  # killed: believed interrupted
        r = gc(tmp_path, "--keep", "0")
        assert r.returncode == 0, r.stderr
        assert run_ids(home) == [running]
        assert f"kept {running}: still running" in r.stdout
        assert f"removed {dead}  tiny v1  interrupted" in r.stdout
    finally:
        sleeper.kill()
        sleeper.wait()
    assert gc(tmp_path, "--keep", "0").returncode == 0  # now it is interrupted: it goes
    assert not run_ids(home)


def test_read_only_results_and_folders_are_removed(tmp_path: Path) -> None:
    home = tmp_path / ".nb2prod"
    old = fake_run(home, 2)
    fake_run(home, 1)
    models = home / "runs" / old / "steps" / "preprocessing" / "outputs"
    models.chmod(0o555)  # a read-only folder of read-only files
    r = gc(tmp_path, "--keep", "1")
    assert r.returncode == 0, r.stderr
    assert old not in run_ids(home)


def test_unknown_pipeline_is_exit_2_with_a_fix(tmp_path: Path) -> None:
    home = tmp_path / ".nb2prod"
    fake_run(home, 1)
    r = gc(tmp_path, "nope")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "nb2prod: no pipeline `nope`: it has no runs in .nb2prod/runs and no folder "
        "pipelines/nope. Fix: name one of tiny (see nb2prod runs)."
    ]
    (tmp_path / "pipelines" / "fresh" / "v1").mkdir(parents=True)  # exported, never run
    r = gc(tmp_path, "pipelines/fresh")
    assert r.returncode == 0, r.stderr
    assert "nothing to remove (0 runs of fresh)." in r.stdout


def test_runs_shows_each_runs_size(tmp_path: Path) -> None:
    home = tmp_path / ".nb2prod"
    small = fake_run(home, 2, size=10)
    big = fake_run(home, 1, size=12_300_000)
    r = run_cli("runs", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    sizes = {row["id"]: row["size_bytes"] for row in json.loads(r.stdout)}
    expected = {
        i: sum(p.stat().st_size for p in (home / "runs" / i).rglob("*") if p.is_file())
        for i in (small, big)
    }
    assert sizes == expected
    lines = run_cli("runs", cwd=tmp_path).stdout.splitlines()
    assert lines[0].startswith(big) and " 12.3 MB " in lines[0], lines
    assert lines[1].startswith(small) and f" {expected[small]} B " in lines[1], lines


# --- real runs: the cache and its hard links ------------------------------------------------
@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with two runs of pipeline `tiny`: the first computed every step, the second
    reused them all (hard links to the first run's files)."""
    project = tmp_path_factory.mktemp("two_runs")
    write_notebook(project / "notebooks" / "tiny.ipynb", TINY_CELLS)
    assert run_cli("export", "notebooks/tiny.ipynb", cwd=project).returncode == 0
    for _ in range(2):
        r = run_tiny(project)
        assert r.returncode == 0, r.stderr
    return project


@pytest.fixture
def project(two_runs: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of ``two_runs`` of the test's own; ``cp -a`` keeps the hard links."""
    copy = tmp_path / "project"
    subprocess.run(["cp", "-a", str(two_runs), str(copy)], check=True)
    yield copy


def run_tiny(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("run", "pipelines/tiny", "--no-track", cwd=project, env={"CI": "true", **env})


def records(project: Path) -> list[dict[str, Any]]:
    """Run records, oldest first."""
    runs = sorted((project / ".nb2prod" / "runs").glob("*/run.json"))
    return [json.loads(p.read_text()) for p in runs]


def cache_runs(project: Path) -> set[str]:
    entries = (project / ".nb2prod" / "cache" / "tiny").glob("*/*.json")
    return {json.loads(p.read_text())["run"] for p in entries}


def unshared_bytes(folder: Path) -> int:
    """Bytes of the files of ``folder`` that no other folder links to."""
    return sum(
        st.st_size
        for p in folder.rglob("*")
        if stat.S_ISREG((st := p.lstat()).st_mode) and st.st_nlink == 1
    )


def test_the_only_copy_of_a_cached_result_is_kept(project: Path) -> None:
    first, second = (r["id"] for r in records(project))
    assert cache_runs(project) == {first}
    assert {s["cached_from"] for s in records(project)[1]["steps"].values()} == {first}
    runs = project / ".nb2prod" / "runs"
    freed = unshared_bytes(runs / second)  # its results are links to the first run's files
    assert 0 < freed < unshared_bytes(runs / first)

    r = gc(project, "--keep", "0")
    assert r.returncode == 0, r.stderr
    assert run_ids(project / ".nb2prod") == [first]
    assert (
        f"kept {first}: the only copy of the cached result of step evaluation, preprocessing, "
        "training (--include-cached removes it)"
    ) in r.stdout
    assert f"({freed} bytes) by removing 1 of 2 runs." in r.stdout, r.stdout
    assert cache_runs(project) == {first}


def test_the_cache_is_re_pointed_at_a_kept_copy(project: Path) -> None:
    first, second = (r["id"] for r in records(project))
    freed = unshared_bytes(project / ".nb2prod" / "runs" / first)  # shared files stay
    r = gc(project, "--keep", "1")
    assert r.returncode == 0, r.stderr
    assert run_ids(project / ".nb2prod") == [second]
    assert f"cache: step training now reuses run {second} (was {first})" in r.stdout
    assert f"({freed} bytes) by removing 1 of 2 runs." in r.stdout, r.stdout
    assert cache_runs(project) == {second}
    r = run_tiny(project)  # still reused, from the kept copy
    assert r.returncode == 0, r.stderr
    assert {s["state"] for s in records(project)[-1]["steps"].values()} == {"cached"}


def test_include_cached_forgets_the_results_and_the_next_run_recomputes(project: Path) -> None:
    before = records(project)[0]["metrics"]
    r = gc(project, "--keep", "0", "--include-cached")
    assert r.returncode == 0, r.stderr
    assert not run_ids(project / ".nb2prod")
    assert "cache: step training forgets the result of run" in r.stdout
    assert not cache_runs(project)
    r = run_tiny(project)
    assert r.returncode == 0, r.stderr
    (record,) = records(project)
    assert {s["state"] for s in record["steps"].values()} == {"succeeded"}
    assert record["metrics"] == before
    assert cache_runs(project) == {record["id"]}


def test_keep_runs_env_applies_gc_after_a_run(project: Path) -> None:
    first, second = (r["id"] for r in records(project))
    r = run_tiny(project, NB2PROD_KEEP_RUNS="1")
    assert r.returncode == 0, r.stderr
    (newest,) = run_ids(project / ".nb2prod")
    assert newest not in (first, second)
    assert f"NB2PROD_KEEP_RUNS: removed {first}" in r.stderr
    assert cache_runs(project) == {newest}  # re-pointed at the run that just finished
    r = run_tiny(project, NB2PROD_KEEP_RUNS="lots")
    assert r.returncode == 0, r.stderr
    assert "warning: NB2PROD_KEEP_RUNS='lots' is not a number of runs to keep" in r.stderr
    assert len(run_ids(project / ".nb2prod")) == 2

"""nb2prod.run.kernels.new_socket_dir: a private folder per run, stale ones of dead runners gone.

Unit tests, in a temporary folder standing for the system's temporary directory."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from nb2prod.run import kernels
from nb2prod.run.kernels import RUNNER_FILE, new_socket_dir


@pytest.fixture
def tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Short, as a temporary folder for sockets must be (pytest's tmp_path can be too deep).
    path = Path(tempfile.mkdtemp(prefix="sd-", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def folder_of(tmp: Path, pid: int, started: int, name: str = "abc_123") -> Path:
    """A socket folder as a runner with PID ``pid``, started at ``started``, leaves it."""
    path = tmp / f"nb2prod-kernels-{name}"
    path.mkdir(mode=0o700)
    (path / RUNNER_FILE).write_text(f"{pid} {started}\n")
    (path / "0123456789ab.json").write_text("{}")
    return path


def dead_pid() -> tuple[int, int]:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = int(psutil.Process(proc.pid).create_time())
    proc.wait()
    return proc.pid, started


def test_the_new_folder_is_private_and_records_its_runner(tmp: Path) -> None:
    path = Path(new_socket_dir())
    assert path.parent == tmp and path.name.startswith("nb2prod-kernels-")
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    started = int(psutil.Process().create_time())
    assert (path / RUNNER_FILE).read_text() == f"{os.getpid()} {started}\n"
    # Its name is no longer than before it recorded a runner: sockets' paths are short.
    assert len(path.name) == len("nb2prod-kernels-") + 8


def test_folders_of_runners_that_are_gone_are_removed(tmp: Path) -> None:
    stale = folder_of(tmp, *dead_pid())
    new_socket_dir()
    assert not stale.exists()


def test_a_reused_pid_does_not_keep_a_folder(tmp: Path) -> None:
    # This process runs, but did not start at the recorded time: the runner was another one.
    started = int(psutil.Process().create_time())
    stale = folder_of(tmp, os.getpid(), started - 3600)
    new_socket_dir()
    assert not stale.exists()


def test_folders_of_running_runners_are_kept(tmp: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = folder_of(tmp, other.pid, int(psutil.Process(other.pid).create_time()))
        mine = Path(new_socket_dir())
        new_socket_dir()
        assert live.is_dir() and (live / "0123456789ab.json").is_file() and mine.is_dir()
    finally:
        other.kill()
        other.wait()


def test_anything_else_is_left_alone(tmp: Path) -> None:
    pid, started = dead_pid()
    unknown = tmp / "nb2prod-kernels-k2j4h5g6"  # no runner recorded: an older nb2prod's, or new
    unknown.mkdir()
    garbled = folder_of(tmp, pid, started, name="garbled")
    (garbled / RUNNER_FILE).write_text("not a pid")
    other = tmp / "other-program"
    other.mkdir()
    (other / RUNNER_FILE).write_text(f"{pid} {started}\n")
    target = folder_of(tmp, pid, started, name="target").rename(tmp / "target")
    link = tmp / "nb2prod-kernels-link"
    link.symlink_to(target)
    a_file = tmp / "nb2prod-kernels-file"
    a_file.write_text(f"{pid} {started}\n")
    new_socket_dir()
    assert unknown.is_dir() and garbled.is_dir() and other.is_dir()
    assert link.is_symlink() and (target / RUNNER_FILE).is_file() and a_file.is_file()


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_other_users_folders_are_left_alone(tmp: Path) -> None:
    theirs = folder_of(tmp, *dead_pid())
    os.chown(theirs, 12345, 12345)
    new_socket_dir()
    assert theirs.is_dir()


def test_a_temporary_folder_too_deep_for_a_socket_falls_back_to_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A socket's whole path must fit in 108 bytes: under a deep $TMPDIR kernels would die with
    # "ipc path ... is longer than 107 characters".
    deep = tmp_path / ("d" * 90)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    made = new_socket_dir()
    try:
        assert made is not None and Path(made).parent == Path("/tmp")
        assert len(os.path.join(made, "0123456789ab-65535")) < 100
    finally:
        if made:
            shutil.rmtree(made)


def test_no_short_temporary_folder_means_no_socket_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    # Then kernels listen on TCP ports of 127.0.0.1 instead: slower to reach, but they run.
    monkeypatch.setattr(kernels, "_socket_parent", lambda: None)
    assert new_socket_dir() is None

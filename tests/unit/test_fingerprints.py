"""nb2prod.run.fingerprints: remembered hashes are reused only when they cannot be stale."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nb2prod.run import fingerprints
from nb2prod.run.fingerprints import FingerprintMemo


def test_an_unchanged_file_is_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    data = tmp_path / "train.csv"
    data.write_text("x\n1\n")
    past = data.stat().st_mtime_ns - 10_000_000_000  # last changed well before it was hashed
    os.utime(data, ns=(past, past))
    memo = FingerprintMemo(home)
    first = memo.fingerprint(data)
    memo.save()
    reads: list[Path] = []
    real = fingerprints.file_sha256
    monkeypatch.setattr(fingerprints, "file_sha256", lambda p: reads.append(p) or real(p))
    assert FingerprintMemo(home).fingerprint(data) == first
    assert reads == []


def test_a_same_size_rewrite_in_the_same_clock_tick_is_hashed_again(tmp_path: Path) -> None:
    """The racy case: content changed, size and mtime did not (a coarse clock, or a tool that
    restores mtimes right after writing). A remembered hash must not hide the change."""
    home = tmp_path / "home"
    data = tmp_path / "train.csv"
    data.write_text("x\n1\n")
    stamp = data.stat().st_mtime_ns
    memo = FingerprintMemo(home)
    before = memo.fingerprint(data)
    memo.save()
    data.write_text("x\n2\n")
    os.utime(data, ns=(stamp, stamp))
    assert FingerprintMemo(home).fingerprint(data) != before


def test_a_folder_is_the_listing_of_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "1.png").write_bytes(b"one")
    memo = FingerprintMemo(tmp_path / "home")
    before = memo.fingerprint(folder)
    (folder / "2.png").write_bytes(b"two")
    assert memo.fingerprint(folder) != before

"""The learner's shared copy of its weights: found only by an actor that shares its files, always
a whole message, cleaned up, and never the only way weights arrive."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from robot_rl.runtime.net.shared_weights import PREFIX, SharedCopy, read_copy, same_host_copy


def test_an_actor_finds_the_copy_only_with_its_key(tmp_path):
    copy = SharedCopy(tmp_path)
    assert same_host_copy(str(copy.path), copy.key) == copy.path
    assert same_host_copy(str(copy.path), "0" * 32) is None  # another learner's folder, same path
    assert same_host_copy(str(tmp_path / "elsewhere"), copy.key) is None  # another host's path
    assert same_host_copy("", "") is None  # not offered
    copy.close()
    assert not copy.path.exists()
    assert same_host_copy(str(copy.path), copy.key) is None


def test_the_copy_holds_the_newest_version_whole(tmp_path):
    copy = SharedCopy(tmp_path)
    with pytest.raises(OSError):
        read_copy(copy.path)  # nothing published yet
    copy.write(2, b"two")
    copy.write(1, b"one")  # an older version never replaces a newer one
    assert read_copy(copy.path)[:] == b"two"
    copy.write(3, b"three")
    held = read_copy(copy.path)
    assert held[:] == b"three" and copy.version == 3
    copy.write(4, b"four!")
    assert held[:] == b"three" and read_copy(copy.path)[:] == b"four!"  # a mapping stays whole
    assert sorted(p.name for p in copy.path.iterdir()) == ["key", "weights"]  # no temporary left
    copy.close()


def test_a_new_learner_removes_the_copies_of_learners_no_longer_running(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f"{PREFIX}{int(dead.stdout)}-abc"
    stale.mkdir()
    (stale / "weights").write_bytes(b"x" * 100)
    alive = tmp_path / f"{PREFIX}{os.getpid()}-def"  # a running learner's: kept
    alive.mkdir()
    other = tmp_path / "someone-elses"
    other.mkdir()
    copy = SharedCopy(tmp_path)
    assert not stale.exists() and alive.exists() and other.exists() and copy.path.exists()
    copy.close()

"""metagen.locks.exclusive_lock: one holder at a time, released on exit, also after an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from metagen.locks import exclusive_lock


def test_one_holder_at_a_time_and_released_on_exit(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with exclusive_lock(path) as first:
        assert first and path.is_file()
        with exclusive_lock(path) as second:  # another open file: flock sees another holder
            assert not second
    with exclusive_lock(path) as again:
        assert again


def test_released_when_the_body_raises(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with pytest.raises(RuntimeError, match="boom"), exclusive_lock(path):
        raise RuntimeError("boom")
    with exclusive_lock(path) as again:
        assert again

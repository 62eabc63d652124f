"""The test setup itself: a plain ``pytest`` never starts SLURM (and MariaDB) on its own."""

from __future__ import annotations

import pytest

from tests.conftest import START_SLURM_ENV, slurm_start_refusal


def test_slurm_is_started_only_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)  # even as root
    monkeypatch.setattr("shutil.which", lambda cmd: f"/usr/bin/{cmd}")
    monkeypatch.delenv(START_SLURM_ENV, raising=False)
    refusal = slurm_start_refusal()
    assert refusal is not None and "scripts/slurm/start.sh" in refusal and START_SLURM_ENV in refusal
    monkeypatch.setenv(START_SLURM_ENV, "1")
    assert slurm_start_refusal() is None
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert "needs root" in (slurm_start_refusal() or "")

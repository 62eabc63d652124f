"""Shared test setup: offline hub, a fresh store per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An empty measured store in a temp dir."""
    from metagen.store import StoreMetadata, create_store

    root = tmp_path / "store"
    create_store(root, StoreMetadata(name="test-store", description="made by a test"))
    return root

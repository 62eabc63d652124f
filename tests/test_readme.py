"""The README's example commands name stores and versions that exist (the bundled store has no ``micro``)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPLAYS = ("benchmark.run", "surrogates.evaluate")


def commands(text: str) -> list[str]:
    """The ``python -m ...`` commands of the bash blocks, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    joined = "\n".join(b.replace("\\\n", " ") for b in blocks)
    return [line.split("#")[0].strip() for line in joined.splitlines() if line.strip().startswith("python -m ")]


def store_versions(store: Path) -> set[str]:
    """Versions a store holds (loose or compacted partitions)."""
    return {p.name.removeprefix("version=") for kind in ("runs", "compacted") for p in (store / kind).glob("version=*")}


def test_replay_examples_use_a_bundled_store_and_one_of_its_versions() -> None:
    replays = [c for c in commands((ROOT / "README.md").read_text()) if c.split()[2] in REPLAYS and "..." not in c]
    assert len(replays) >= 2
    for cmd in replays:
        store = re.search(r"\bstore=(\S+)", cmd)
        assert store is not None and (ROOT / store.group(1) / "store.json").is_file(), (
            f"README example {cmd!r} must name a store that exists here (e.g. store=stores/offline10-64px)"
        )
        versions = store_versions(ROOT / store.group(1))
        version = re.search(r"\bversion=(\S+)", cmd)
        if version is not None:
            assert version.group(1) in versions, f"{cmd!r}: {store.group(1)} has versions {sorted(versions)}"
        elif cmd.split()[2] == "benchmark.run":  # its default version is micro (surrogates.evaluate: every version)
            assert "micro" in versions, f"{cmd!r}: name one of {sorted(versions)} with version="

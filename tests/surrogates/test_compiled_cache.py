"""A compiled fit (and compiled meta-training) gives the same bits whether its kernels were compiled in the process or
loaded from numba's cache.

Each fit runs in a subprocess over one ``NUMBA_CACHE_DIR``: the first compiles (empty cache) and writes the
cache, the second loads it. Replays of GP methods depend on this (docs/benchmark-protocol.md §2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")

_FIT = """
import hashlib, json, torch
from surrogates import jit_kernels
from surrogates.compiled import CompiledFit
from tests.surrogates.test_compiled import _twins

out = {}
for name in ("dyhpo", "quicktune"):
    for n in (7, 60):
        _, model, train, _ = _twins(name, n, torch.float32)
        CompiledFit(model, train, 1e-2).run(40)
        digest = hashlib.sha256()
        for value in model.state_dict().values():
            digest.update(value.numpy().tobytes())
        out[f"{name}/{n}"] = digest.hexdigest()
from surrogates import jit_meta
from surrogates.metatrain import MetaTrainConfig, meta_train
from tests.surrogates.tiny import make_task

train = [make_task(f"T{i}", n=30, epochs=8, seed=i) for i in range(2)]
meta = meta_train(train, [make_task("V", n=30, epochs=8, seed=9)], MetaTrainConfig(iterations=60, val_every=20))
digest = hashlib.sha256()
for state in (meta.perf_state, meta.cost_state):
    for value in state.values():
        digest.update(value.numpy().tobytes())
out["meta_train"] = digest.hexdigest()
stats = {k: getattr(jit_kernels, k).stats for k in ("dyhpo_fit", "quicktune_fit")}
stats.update({k: getattr(jit_meta, k).stats for k in ("quicktune_meta_step", "cost_step", "gp_mean")})
out["misses"] = sum(sum(s.cache_misses.values()) for s in stats.values())
out["hits"] = sum(sum(s.cache_hits.values()) for s in stats.values())
print(json.dumps(out))
"""


def _fit_in_subprocess(cache: Path) -> dict:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", _FIT], env=env, cwd=root, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_kernels_compiled_in_process_and_loaded_from_cache_fit_the_same_bits(tmp_path: Path):
    compiled = _fit_in_subprocess(tmp_path)
    loaded = _fit_in_subprocess(tmp_path)
    assert compiled.pop("misses") > 0 and compiled.pop("hits") == 0  # the first process compiled ...
    assert loaded.pop("hits") > 0 and loaded.pop("misses") == 0  # ... the second loaded what it cached
    assert loaded == compiled

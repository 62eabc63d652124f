"""The end of a session: the best pipeline, its checkpoint, ``report.json``, ``report.md`` and a plot of the
best accuracy (and the regret against the best accuracy the session found) over session time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from metagen.tune.config import _fmt_seconds


def _best_over_time(trace: Any) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(np.asarray(trace.time, dtype=np.float64), kind="stable")
    t = np.asarray(trace.time, dtype=np.float64)[order]
    v = np.asarray(trace.value, dtype=np.float64)[order]
    inc = np.fmax.accumulate(np.where(np.isfinite(v), v, -np.inf)) if v.size else v
    return t, np.where(np.isfinite(inc), inc, np.nan)


def summary(result: Any) -> dict[str, Any]:
    """The session's report as a JSON-ready dict."""
    p, trace = result.prepared, result.trace
    inc = trace.incumbent()
    best = None
    if inc is not None:
        i, epoch, acc = inc
        c = p.candidates[i]
        ck = Path(p.checkpoint_dir) / c.run_id / "last.pt"
        best = {"candidate": i, "run_id": c.run_id, "model": c.model, "hp": c.hp, "accuracy": acc, "epoch": epoch,
                "checkpoint": str(ck), "checkpoint_exists": ck.is_file()}  # fmt: skip
    t, incumbent = _best_over_time(trace)
    per_pipeline: dict[int, int] = {}
    for i in trace.pipeline:
        per_pipeline[i] = per_pipeline.get(i, 0) + 1
    return {
        "dataset": p.dataset_name, "dataset_path": p.dataset, "method": p.cfg.method, "seed": p.cfg.seed,
        "budget": str(p.budget), "workers": p.cfg.workers, "cluster": p.cfg.cluster,
        "meta_store": p.info.path, "search_space": p.info.space, "store": p.store, "version": p.version,
        "candidates": len(p.candidates), "epochs_per_pipeline": p.epochs, "time_used_s": result.time_used,
        "stop": result.stop, "steps": result.steps, "epochs_trained": len(trace.epoch),
        "pipelines_trained": len(per_pipeline), "best": best,
        "trajectory": [{"t": float(a), "best": (None if not np.isfinite(b) else float(b))}
                       for a, b in zip(t, incumbent, strict=True)],
    }  # fmt: skip


def plot(result: Any, path: Path) -> None:
    """Best accuracy and regret (against the session's best) over session time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, inc = _best_over_time(result.trace)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    if t.size:
        a1.step(t, inc, where="post")
        top = np.nanmax(inc) if np.isfinite(inc).any() else np.nan
        a2.step(t, top - inc, where="post")
    p = result.prepared
    a1.set(xlabel="session time (s)", ylabel="best validation top-1", title=f"{p.dataset_name}: {p.cfg.method}")
    a2.set(xlabel="session time (s)", ylabel="regret vs. session best", title="regret over time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: Any) -> list[str]:
    """Writes ``report.json``, ``report.md`` and ``best_over_time.png`` into the output folder; returns the
    lines to print."""
    out = Path(result.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = summary(result)
    (out / "report.json").write_text(json.dumps(s, indent=2, default=str) + "\n")
    plot(result, out / "best_over_time.png")
    best = s["best"]
    lines = [
        f"[tune] done ({s['stop']}): {s['epochs_trained']} epochs of {s['pipelines_trained']} pipelines in "
        f"{s['steps']} steps, {_fmt_seconds(s['time_used_s'])} used of {s['budget']}",
    ]
    if best is None:
        lines.append("[tune] no finite accuracy observed")
    else:
        hp = ", ".join(f"{k}={v}" for k, v in sorted(best["hp"].items()))
        lines += [
            f"[tune] best: candidate #{best['candidate']} {best['model']} acc {best['accuracy']:.4f} at epoch "
            f"{best['epoch']} (run {best['run_id']})",
            f"[tune] checkpoint: {best['checkpoint']}",
            f"[tune] hyperparameters: {hp}",
        ]
    lines.append(f"[tune] report: {out / 'report.md'} (json, plot best_over_time.png beside it)")
    md = [
        f"# Tuning session: {s['dataset']} with {s['method']}",
        "",
        f"* dataset `{s['dataset_path']}`, {s['candidates']} candidates of search space `{s['search_space']}`, "
        f"{s['epochs_per_pipeline']} epochs each",
        f"* meta_store `{s['meta_store']}`; runs written to `{s['store']}` (version `{s['version']}`)",
        f"* budget {s['budget']}, {s['workers']} {s['cluster']} worker(s), seed {s['seed']}; stopped: {s['stop']}",
        f"* used {_fmt_seconds(s['time_used_s'])}; {s['epochs_trained']} epochs of {s['pipelines_trained']} "
        f"pipelines in {s['steps']} steps",
        "",
    ]
    if best is not None:
        md += [
            "## Best pipeline",
            "",
            f"* candidate #{best['candidate']}: `{best['model']}`, validation top-1 **{best['accuracy']:.4f}** "
            f"at epoch {best['epoch']}",
            f"* run id `{best['run_id']}`; checkpoint `{best['checkpoint']}` (its last trained epoch)",
            "* hyperparameters: " + ", ".join(f"`{k}={v}`" for k, v in sorted(best["hp"].items())),
            "",
        ]
    md += ["![best accuracy over time](best_over_time.png)", ""]
    (out / "report.md").write_text("\n".join(md))
    return lines

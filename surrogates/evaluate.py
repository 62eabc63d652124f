"""Held-out-dataset quality of the meta-trained performance and cost predictors.

``python -m surrogates.evaluate store=STORE out=DIR [version=V] [folds=[0,1]]``: for every split
of the paper's dataset-level folds, meta-train on the split's training datasets (checkpoint chosen
on its validation datasets, cached), then on each never-seen test dataset condition the GP on a
random context of observed (pipeline, epoch) pairs and score:

* performance: MSE of the predictive mean (and of a constant predictor, the context mean), Gaussian
  NLL, coverage of the central 50/90/95 % predictive intervals, and the Spearman correlation of
  predicted vs true final accuracy of every pipeline (queried as unseen: zero curve);
* cost: MSE of log seconds per epoch and the Spearman correlation of predicted vs true cost.

Writes ``results.json`` and ``calibration.png`` (interval coverage and predicted vs true final
accuracy) to ``out`` and prints a table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.stats import norm, spearmanr

from surrogates.data import EncodedTask, TaskData
from surrogates.folds import paper_splits
from surrogates.metatrain import DEFAULT_META, MetaModel, MetaTrainConfig, load_or_meta_train

LEVELS = (0.5, 0.9, 0.95)
CURVE_LEVELS = tuple(np.round(np.linspace(0.05, 0.95, 19), 2))


@dataclass
class FoldScores:
    """Scores of one split on its test datasets (pooled over datasets and episodes)."""

    version: str
    fold: int
    test_datasets: list[str]
    mse: float
    mse_constant: float
    nll: float
    coverage: dict[str, float]
    spearman_final: float
    cost_mse_log: float
    cost_spearman: float
    calibration: list[float]  # empirical coverage at CURVE_LEVELS
    final_pred: list[float]
    final_true: list[float]


def score_fold(model: MetaModel, tests: Sequence[TaskData], episodes: int, context: int, query: int, seed: int,
               version: str = "", fold: int = 0) -> FoldScores:  # fmt: skip
    """Scores of a meta-trained model on test datasets it has never seen."""
    if episodes < 1:
        raise ValueError(f"score_fold needs at least one episode, got episodes={episodes}")
    rng = np.random.default_rng(seed)
    perf = model.perf_model()
    cost = model.cost_model()
    ys, mus, sds, consts, c_true, c_pred, f_pred, f_true = [], [], [], [], [], [], [], []
    for t in tests:
        et = EncodedTask(t, model.encoder, model.meta_scaler, model.max_epochs)
        first_ctx = None
        for _ in range(episodes):
            ctx, q = et.sample(rng, context), et.sample(rng, query)
            if first_ctx is None:
                first_ctx = ctx
            mu, sd = perf.predict(ctx, q)
            ys.append(q.y.numpy().astype(np.float64))
            mus.append(mu)
            sds.append(sd)
            consts.append(np.full(len(q), float(ctx.y.mean())))
            if cost is not None:
                ok = np.isfinite(q.cost.numpy()) & (q.cost.numpy() > 0)
                c_true.append(np.log(q.cost.numpy()[ok]))
                c_pred.append(np.log(cost.predict(q))[ok])
        runs = et.usable
        final_q = et.batch(runs, et.n_valid[runs], with_curve=False)
        assert first_ctx is not None  # episodes >= 1
        mu, _ = perf.predict(first_ctx, final_q)
        f_pred.extend(mu.tolist())
        f_true.extend(final_q.y.numpy().astype(float).tolist())
    y, mu, sd, const = (np.concatenate(a) for a in (ys, mus, sds, consts))
    z = np.abs(y - mu) / sd
    nll = float(np.mean(0.5 * np.log(2 * np.pi * sd**2) + 0.5 * z**2))
    cover = {f"{int(lv * 100)}%": float(np.mean(z <= norm.ppf(0.5 + lv / 2))) for lv in LEVELS}
    ct, cp = (np.concatenate(c_true), np.concatenate(c_pred)) if c_true else (np.zeros(0), np.zeros(0))
    return FoldScores(
        version=version,
        fold=fold,
        test_datasets=[t.name for t in tests],
        mse=float(np.mean((y - mu) ** 2)),
        mse_constant=float(np.mean((y - const) ** 2)),
        nll=nll,
        coverage=cover,
        spearman_final=float(spearmanr(f_pred, f_true).statistic) if len(f_pred) > 2 else float("nan"),
        cost_mse_log=float(np.mean((ct - cp) ** 2)) if ct.size else float("nan"),
        cost_spearman=float(spearmanr(cp, ct).statistic) if ct.size > 2 else float("nan"),
        calibration=[float(np.mean(z <= norm.ppf(0.5 + lv / 2))) for lv in CURVE_LEVELS],
        final_pred=f_pred,
        final_true=f_true,
    )


def evaluate(store: str, out: str | Path, version: str | None = None, folds: Sequence[int] | None = None,
             n_folds: int = 5, split_seed: int = 42, episodes: int = 10, context_size: int = 32,
             query_size: int = 64, cache_dir: str | None = None, config: MetaTrainConfig = DEFAULT_META,
             progress: bool = True) -> list[FoldScores]:  # fmt: skip
    """Meta-train per split and score on the split's test datasets; writes ``results.json`` and a figure."""
    from metagen.store import StoreReader
    from metagen.store.layout import dataset_keys
    from surrogates.data import load_store_tasks

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reader = StoreReader(store)
    versions = [version] if version else reader.versions()
    unknown = [v for v in versions if v not in reader.versions()]
    if unknown:
        raise ValueError(f"store {store} has no version {unknown}; it has {reader.versions()}")
    scores = []
    for v in versions:
        tasks = {t.name: t for t in load_store_tasks(store, v)}
        splits = paper_splits(list(tasks), n_folds, split_seed, dataset_keys(store, v))
        chosen = range(len(splits)) if folds is None else folds
        for k in chosen:
            if not 0 <= k < len(splits):
                raise ValueError(f"fold {k} does not exist; there are {len(splits)} splits")
            s = splits[k]
            model = load_or_meta_train(store, v, s.train, s.valid, k, cache_dir or out / "cache", config, progress)
            scores.append(score_fold(model, [tasks[d] for d in s.test], episodes, context_size, query_size,
                                     config.seed + k, v, k))  # fmt: skip
    (out / "results.json").write_text(json.dumps([asdict(s) for s in scores], indent=1))
    plot(scores, out / "calibration.png")
    return scores


def table(scores: Sequence[FoldScores]) -> str:
    """A plain-text table of the scores, one row per (version, fold)."""
    head = f"{'version':<9}{'fold':>5}{'MSE':>9}{'MSE c':>9}{'NLL':>8}{'cov50':>7}{'cov90':>7}{'cov95':>7}"
    head += f"{'rho fin':>9}{'cost MSE':>10}{'rho cost':>9}"
    rows = [head]
    for s in scores:
        c = s.coverage
        rows.append(
            f"{s.version:<9}{s.fold:>5}{s.mse:>9.4f}{s.mse_constant:>9.4f}{s.nll:>8.3f}{c['50%']:>7.2f}"
            f"{c['90%']:>7.2f}{c['95%']:>7.2f}{s.spearman_final:>9.3f}{s.cost_mse_log:>10.4f}{s.cost_spearman:>9.3f}"
        )
    return "\n".join(rows)


def plot(scores: Sequence[FoldScores], path: Path) -> None:
    """Interval coverage vs nominal level per fold, and predicted vs true final accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.5))
    a.plot([0, 1], [0, 1], "k--", lw=1, label="ideal")
    for s in scores:
        a.plot(CURVE_LEVELS, s.calibration, marker=".", lw=1, label=f"{s.version} fold {s.fold}")
        b.scatter(s.final_true, s.final_pred, s=4, alpha=0.4, label=f"{s.version} fold {s.fold}")
    a.set(xlabel="nominal central interval", ylabel="empirical coverage", title="Performance predictor calibration")
    a.legend(fontsize=7)
    b.plot([0, 1], [0, 1], "k--", lw=1)
    b.set(xlabel="true final accuracy", ylabel="predicted (unseen pipeline)", title="Final accuracy, held-out datasets")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    """Hydra entry point: ``python -m surrogates.evaluate store=... out=...``."""
    import hydra
    from omegaconf import OmegaConf

    from metagen.exit_codes import BAD_INPUT, app_started, fail, missing_keys_message, run_hydra
    from metagen.store import StoreError
    from surrogates.evaluate_config import EvaluateConfig

    @hydra.main(version_base=None, config_name="surrogates_evaluate")
    def _run(cfg: EvaluateConfig) -> None:
        app_started()
        missing = missing_keys_message(cfg, ("store", "out"))
        if missing:
            fail(missing)
        c = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(c, dict)
        config = MetaTrainConfig(iterations=c["iterations"], lr=c["lr"], seed=c["seed"])
        try:
            scores = evaluate(c["store"], c["out"], c["version"], c["folds"], c["n_folds"], c["split_seed"],
                              c["episodes"], c["context_size"], c["query_size"], c["cache_dir"], config)  # fmt: skip
        except (StoreError, ValueError, FileNotFoundError) as e:
            fail(f"error: {e}", BAD_INPUT)
        print(table(scores))
        print(f"wrote {Path(c['out']) / 'results.json'} and {Path(c['out']) / 'calibration.png'}")

    run_hydra(_run)


if __name__ == "__main__":
    main()

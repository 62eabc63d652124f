"""The thin Hydra entry point of ``python -m metagen.sweep``: compose the config, prepare, launch, report."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from metagen.sweep.config import LocalClusterConfig, SlurmClusterConfig, SweepConfig
from metagen.sweep.errors import SweepError
from metagen.sweep.executors import job_name, job_time_min
from metagen.sweep.launch import LaunchReport, Prepared, launch, prepare

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def describe(prep: Prepared) -> str:
    """What the sweep will do: runs per dataset, how many are stored, where they will run."""
    cfg, plan = prep.cfg, prep.plan
    lines = [
        f"sweep {cfg.name!r}: {len(prep.datasets)} dataset(s) x {cfg.pipelines_per_dataset} pipeline(s)"
        f"{' + default pipelines' if cfg.include_defaults else ''} = "
        f"{len(plan.runs)} runs (version {cfg.version}, seed {cfg.seed}, {cfg.epochs} epochs, "
        f"cap {prep.settings.cap_s} s); {len(plan.complete)} in the store, {len(plan.todo)} to run",
    ]
    for name, (n, done) in plan.by_dataset().items():
        lines.append(f"  {name}: {n} planned, {done} in the store")
    c = cfg.cluster
    if isinstance(c, SlurmClusterConfig):
        n_jobs = -(-len(plan.todo) // c.runs_per_job)
        lines.append(
            f"  slurm: {n_jobs} array task(s) of <= {c.runs_per_job} run(s) as {job_name(cfg)!r}, partition "
            f"{prep.partition or '(default)'}, {c.gpus_per_node} GPU, {c.cpus_per_task} CPU, {c.mem_gb} GB, "
            f"{job_time_min(cfg, c.runs_per_job)} min, at most {c.array_parallelism} at once"
        )
    elif isinstance(c, LocalClusterConfig):
        how = "in this process" if c.processes == 1 and not c.use_submitit else f"{c.processes} local job(s)"
        lines.append(f"  local: {how}")
    lines.append(f"  sweep dir: {prep.settings.sweep_dir}")
    lines.append(f"  checkpoints: {prep.settings.checkpoint_dir}")
    return "\n".join(lines)


def summarize(report: LaunchReport) -> str:
    """What a launch did: jobs submitted, or run outcomes."""
    cfg = report.prepared.cfg
    store = report.prepared.settings.store
    lines = []
    if cfg.dry_run:
        lines.append("dry run: nothing submitted")
    elif report.job_ids:
        lines.append(f"submitted {len(report.job_ids)} job(s): {', '.join(report.job_ids[:10])}"
                     + (" ..." if len(report.job_ids) > 10 else ""))  # fmt: skip
        lines.append(f"  logs: {report.folder}")
    if report.outcomes:
        counts: dict[str, int] = {}
        for o in report.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        lines.append("runs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        for o in report.outcomes:
            if o.status in ("failed", "interrupted"):
                lines.append(f"  {o.run_id}: {o.status}: {o.message}")
    lines.extend(f"  {e}" for e in report.errors)
    if not cfg.dry_run:
        lines.append(f"progress: python -m metagen.sweep.status {store} --sweep {cfg.name}"
                     + (" --follow" if report.job_ids and not report.outcomes else ""))  # fmt: skip
    return "\n".join(lines)


def run(node: DictConfig) -> int:
    """Prepare and launch the sweep of a composed config; returns the exit code (2 = bad input, 1 = failures)."""
    try:
        cfg = OmegaConf.to_object(node)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        hint = f" (set {key}=...)" if key else ""
        print(f"error: {type(e).__name__}: {str(e).splitlines()[0]}{hint}", file=sys.stderr)
        return 2
    assert isinstance(cfg, SweepConfig)
    try:
        prep = prepare(cfg)
        for w in prep.warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(describe(prep), flush=True)
        report = launch(cfg, prep)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summarize(report), flush=True)
    bad = [o for o in report.outcomes if o.status in ("failed", "interrupted")]
    return 1 if bad or report.errors else 0


def help_text() -> str:
    """``--help``: every key with its default and meaning, the clusters, models, versions and dataset kinds."""
    from metagen import cli_help
    from metagen.sweep.config import HubConfig

    clusters = sorted(p.stem for p in (CONF_DIR / "cluster").glob("*.yaml"))
    return cli_help.render(
        "python -m metagen.sweep store=STORE 'datasets=[PATH,...]' [pipelines_per_dataset=N] [version=V] "
        "[cluster=local|slurm|NAME] [KEY=VALUE ...]",
        "Finetunes pipelines_per_dataset sampled pipelines (model + hyperparameters of the hub's search space) on "
        "every dataset and writes each run with its learning curve into the store; relaunching skips stored runs "
        "and resumes interrupted ones. Runs in this process, as local jobs, or as a SLURM job array "
        "(docs/sweeps.md).",
        [
            ("Keys (KEY=DEFAULT):", cli_help.keys_section(SweepConfig, skip=("hub", "cluster"))),
            ("Hub (hub.KEY=DEFAULT):", cli_help.keys_section(HubConfig, prefix="hub.")),
            (
                f"Clusters (cluster=NAME, one of {clusters}; conf/cluster/NAME.yaml), cluster=local keys:",
                cli_help.keys_section(LocalClusterConfig, prefix="cluster.", skip=("kind",)),
            ),
            ("cluster=slurm keys:", cli_help.keys_section(SlurmClusterConfig, prefix="cluster.", skip=("kind",))),
            (
                f"Models (hub.models=[NAME,...]) of search space v1 (hub.search_space= one of "
                f"{cli_help.search_spaces()}):",
                cli_help.models_section("v1"),
            ),
            ("Versions (version=NAME sets these keys; each can be overridden):", cli_help.versions_section()),
            (
                "Dataset kinds (make datasets to sweep over: python -m metagen.datasets make KIND OUT, or suite OUT):",
                cli_help.dataset_kinds_section(),
            ),
        ],
    )


def main() -> int:
    """Run the Hydra app on ``sys.argv``; returns the exit code (``metagen.exit_codes``)."""
    from metagen import cli_help
    from metagen.exit_codes import INTERRUPTED, app_started, run_hydra

    if cli_help.wants_help(sys.argv[1:]):
        print(help_text())
        return 0
    import hydra

    rc = {"code": 0}

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="sweep")
    def app(node: DictConfig) -> None:
        app_started()
        try:
            rc["code"] = run(node)
        except KeyboardInterrupt:  # the second Ctrl-C of an in-process sweep
            print("interrupted; relaunch the same command to resume", file=sys.stderr)
            rc["code"] = INTERRUPTED

    run_hydra(app)
    return rc["code"]

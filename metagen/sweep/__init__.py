"""Learning-curve sweeps: plan N sampled pipelines per dataset from the store, run them through submitit.

``python -m metagen.sweep store=STORE 'datasets=[...]' cluster=local|slurm`` launches (see docs/sweeps.md);
``python -m metagen.sweep.status STORE`` shows progress. Importing this package imports neither torch nor
timm; the runner (``metagen.finetune``) is imported when runs are planned or trained.
"""

from metagen.sweep.config import HubConfig, LocalClusterConfig, SlurmClusterConfig, SweepConfig
from metagen.sweep.errors import ClusterError, StoreNotWritableError, SweepConfigError, SweepError
from metagen.sweep.plan import DatasetRef, Plan, RunSpec, plan_runs, sample_pipelines

__all__ = [
    "ClusterError",
    "DatasetRef",
    "HubConfig",
    "LocalClusterConfig",
    "Plan",
    "RunSpec",
    "SlurmClusterConfig",
    "StoreNotWritableError",
    "SweepConfig",
    "SweepConfigError",
    "SweepError",
    "plan_runs",
    "sample_pipelines",
]

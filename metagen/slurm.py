"""SLURM settings shared by sweeps (``cluster=slurm``) and ``benchmark.run executor=slurm``, and the one
builder of submitit's sbatch parameters.

:class:`SlurmSettings` holds the fields both submitters have (as Hydra's launcher configs share a base);
``metagen.sweep.config.SlurmClusterConfig`` and ``benchmark.config.SlurmConfig`` extend it with their own
(runs per job and GPUs; cells per job). Imports neither submitit nor torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SlurmSettings:
    """What every SLURM job array of this project is submitted with.

    Attributes:
        partition: SLURM partition (``null`` = the cluster's default).
        account: ``--account`` (``null`` = your default).
        qos: ``--qos`` (``null`` = the partition's default).
        constraint: node features (``--constraint``), e.g. ``"a100|h100"`` (``null`` = none).
        cpus_per_task: CPU cores per array task.
        mem_gb: memory per array task in GB.
        array_parallelism: at most this many array tasks run at the same time (``%N`` of ``--array``).
        setup: shell lines run in the task before python starts (``module load ...``, ``export ...``).
        additional_parameters: any other sbatch option, e.g. ``{"mail-type": "FAIL", "exclude": "node[01-02]"}``.
        job_name: ``--job-name`` (``null`` = the submitter's default).
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    cpus_per_task: int = 1
    mem_gb: float = 4.0
    array_parallelism: int = 64
    setup: list[str] = field(default_factory=list)
    additional_parameters: dict[str, Any] = field(default_factory=dict)
    job_name: str | None = None

    def sbatch(
        self,
        *,
        job_name: str,
        time_min: int,
        setup: list[str] | None = None,
        partition: str | None = None,
        gpus_per_node: int = 0,
        signal_delay_s: int | None = None,
    ) -> dict[str, Any]:
        """:func:`sbatch_parameters` of these settings for one job of ``time_min`` minutes.

        Args:
            setup: the task's setup lines (default: ``self.setup``).
            partition: overrides ``self.partition`` when given (a resolved default partition).
        """
        return sbatch_parameters(
            job_name=job_name,
            time_min=time_min,
            cpus_per_task=self.cpus_per_task,
            mem_gb=self.mem_gb,
            array_parallelism=self.array_parallelism,
            setup=self.setup if setup is None else setup,
            additional_parameters=self.additional_parameters,
            gpus_per_node=gpus_per_node,
            signal_delay_s=signal_delay_s,
            optional={
                "partition": partition or self.partition,
                "account": self.account,
                "qos": self.qos,
                "constraint": self.constraint,
            },
        )


def sbatch_parameters(
    *,
    job_name: str,
    time_min: int,
    cpus_per_task: int,
    mem_gb: float,
    array_parallelism: int,
    setup: list[str],
    additional_parameters: dict[str, Any],
    gpus_per_node: int = 0,
    signal_delay_s: int | None = None,
    optional: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``submitit.SlurmExecutor.update_parameters`` for one-node, one-task array jobs.

    ``optional`` holds sbatch options (partition, account, ...) that are passed only when set; no
    ``--gpus-per-node`` is passed for 0 GPUs (clusters without GRES reject any gpu request).
    """
    params: dict[str, Any] = {
        "job_name": job_name,
        "time": time_min,
        "nodes": 1,
        "ntasks_per_node": 1,
        "cpus_per_task": cpus_per_task,
        "mem": f"{max(1, math.ceil(mem_gb * 1024))}MB",
    }
    if signal_delay_s is not None:
        params["signal_delay_s"] = signal_delay_s
    params |= {"array_parallelism": array_parallelism, "setup": list(setup),
               "additional_parameters": dict(additional_parameters)}  # fmt: skip
    if gpus_per_node > 0:
        params["gpus_per_node"] = gpus_per_node
    params |= {key: value for key, value in (optional or {}).items() if value}
    return params

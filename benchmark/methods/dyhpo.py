"""DyHPO (Wistuba, Kadra & Grabocka, NeurIPS 2022) on a finite candidate set (reference §7).

Deep-kernel GP over ``[x, b/E]`` and the observed curve (no meta-learning, no cost model, no
meta-features), multi-fidelity EI against y*_b, one-epoch steps, one random pipeline at budget 1 as
the initial design. The pipeline scaling is fitted on the task's candidate set (known before any
observation), as the reference min-max scales its candidate table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from benchmark.methods.graybox_bo import GrayBoxBO, RefitSchedule
from benchmark.protocol import MetaContext, SearchView
from surrogates.encoding import PipelineEncoder
from surrogates.gp import DeepKernelGP
from surrogates.nets import DyHPOExtractor, init_parameters


class DyHPO(GrayBoxBO):
    """DyHPO as an ask/tell optimizer.

    Args:
        view: the task's candidate set.
        seed: seed of the initial design and the surrogate.
        context: ignored (DyHPO does not meta-learn); accepted for the common factory signature.
        schedule: ``"reference"`` (default: 1000 epochs from scratch for the first 10 fits, then 50,
            a restart after int(1.2 E) steps without improvement; the training-MSE restart is off, as upstream)
            | a :class:`RefitSchedule` or a mapping of its fields.
        step: fidelity step in epochs (reference: 1).
        hidden, out_dim: kernel-network sizes (reference: 64, 128).
    """

    def __init__(
        self,
        view: SearchView,
        seed: int,
        context: MetaContext | None = None,
        *,
        schedule: str | RefitSchedule | Mapping[str, Any] | None = None,
        step: int = 1,
        hidden: int = 64,
        out_dim: int = 128,
        **options: Any,
    ):
        encoder = PipelineEncoder.fit(view.features, view.feature_names)

        def factory(generator: torch.Generator) -> DeepKernelGP:
            model = DeepKernelGP(DyHPOExtractor(encoder.dim, hidden=hidden, out_dim=out_dim))
            init_parameters(model.extractor, generator)
            return model

        super().__init__(view, seed, model_factory=factory, encoder=encoder, schedule=schedule, step=step, **options)

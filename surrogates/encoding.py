"""Scaling of encoded pipelines and dataset meta-features, fitted on meta-training data only.

The store (``metagen.store.encoding``) and :class:`benchmark.protocol.SearchView` give pipelines as
unscaled float columns with names (``model=<name>`` one-hot first, categorical one-hots with an
explicit ``=None`` category, booleans, numerics with ``<name>=None`` indicators for inactive
conditionals). :class:`PipelineEncoder` fixes a column order (model one-hot first, then the
hyperparameter group), aligns any table to it **by column name**, and scales numeric columns with
statistics of the data it was fitted on. Imports neither torch nor timm.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

META_FEATURES = ("train_size", "num_classes", "resolution", "channels")
"""The 4 dataset descriptors of the reference (§3.4), in input order."""

_LOG_RATIO = 10.0  # a non-negative numeric column spanning an order of magnitude or more is log-scaled


@dataclass(frozen=True)
class NumericScale:
    """How one numeric column is scaled: optional ``log10(x + offset)``, then min-max to [0, 1]."""

    log: bool
    offset: float
    lo: float
    hi: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Scaled ``x`` (values outside the fitted range extrapolate linearly; no clipping).

        On a log-scaled column fitted without zeros (``offset`` 0), values more than a decade below
        the fitted minimum, zeros included, map to one decade below it (as the offset of a column
        fitted with zeros places them), never to ``log10(0)``.
        """
        if self.log:
            floor = 10.0**self.lo / 10.0 if self.offset == 0 else 0.0
            v = np.log10(np.maximum(x, floor) + self.offset)
        else:
            v = x
        return (v - self.lo) / (self.hi - self.lo) if self.hi > self.lo else v - self.lo


@dataclass(frozen=True)
class PipelineEncoder:
    """Column order, groups and numeric scaling of encoded pipelines.

    Attributes:
        columns: ``(D,)`` output column names; the first ``n_model`` are ``model=<name>``.
        n_model: size of the model one-hot group (the hyperparameter group is the rest).
        scales: numeric columns and how they are scaled; every other column is binary (0/1).
    """

    columns: tuple[str, ...]
    n_model: int
    scales: Mapping[str, NumericScale] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """``D``, the encoded width."""
        return len(self.columns)

    @property
    def model_slice(self) -> slice:
        """Columns of the model one-hot group."""
        return slice(0, self.n_model)

    @property
    def hp_slice(self) -> slice:
        """Columns of the hyperparameter group (everything after the model one-hot)."""
        return slice(self.n_model, self.dim)

    @classmethod
    def fit(cls, features: np.ndarray, names: Sequence[str]) -> PipelineEncoder:
        """Fit on ``features`` ``(N, d)`` with column ``names`` ``(d,)`` (meta-training rows only)."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(names):
            raise ValueError(f"features of shape {features.shape} do not match {len(names)} column names")
        if len(set(names)) != len(names):
            raise ValueError("duplicate column names in the encoded pipelines")
        model_cols = [n for n in names if n.startswith("model=")]
        other = [n for n in names if not n.startswith("model=")]
        if not model_cols:
            raise ValueError("no 'model=<name>' one-hot columns: not an encoded pipeline table")
        scales: dict[str, NumericScale] = {}
        for j, name in enumerate(names):
            if name in model_cols:
                continue
            col = features[:, j]
            if np.isin(col, (0.0, 1.0)).all():
                continue
            scales[name] = _fit_numeric(col)
        return cls(tuple(model_cols + other), len(model_cols), scales)

    def transform(self, features: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """``features`` ``(n, d)`` with column ``names`` -> ``(n, D)`` float32 in this encoder's order.

        A one-hot/indicator column missing from the input is 0 (e.g. a model absent from the
        candidate set); a binary input column the encoder never saw is dropped with a warning
        (e.g. a model without meta-training data); an unknown or missing numeric column is an error.
        """
        features = np.asarray(features, dtype=np.float64)
        index = {n: j for j, n in enumerate(names)}
        unknown = [n for n in names if n not in set(self.columns)]
        if unknown:
            bad = [n for n in unknown if not np.isin(features[:, index[n]], (0.0, 1.0)).all()]
            if bad:
                raise ValueError(f"numeric columns {bad} were not in the data the encoder was fitted on")
            used = [n for n in unknown if features[:, index[n]].any()]
            if used:
                warnings.warn(f"columns {used} were never seen when fitting the encoder; ignored", stacklevel=2)
        missing_numeric = [n for n in self.scales if n not in index]
        if missing_numeric:
            raise ValueError(f"the table lacks numeric columns {missing_numeric} that the encoder was fitted on")
        out = np.zeros((features.shape[0], self.dim), dtype=np.float64)
        for k, name in enumerate(self.columns):
            if name in index:
                col = features[:, index[name]]
                out[:, k] = self.scales[name].apply(col) if name in self.scales else col
        return out.astype(np.float32)

    def to_dict(self) -> dict:
        """A JSON-able form (for checkpoints)."""
        return {
            "columns": list(self.columns),
            "n_model": self.n_model,
            "scales": {k: [v.log, v.offset, v.lo, v.hi] for k, v in self.scales.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> PipelineEncoder:
        """Inverse of :meth:`to_dict`."""
        scales = {k: NumericScale(bool(v[0]), *map(float, v[1:])) for k, v in d["scales"].items()}
        return cls(tuple(d["columns"]), int(d["n_model"]), scales)


def _fit_numeric(col: np.ndarray) -> NumericScale:
    positive = col[col > 0]
    log = bool(col.min() >= 0 and positive.size and positive.max() / positive.min() >= _LOG_RATIO)
    offset = float(positive.min() / 10.0) if log and (col == 0).any() else 0.0
    v = np.log10(np.maximum(col, 0.0) + offset) if log else col
    return NumericScale(log, offset, float(v.min()), float(v.max()))


@dataclass(frozen=True)
class MetaFeatureScaler:
    """Standardizes the 4 dataset descriptors (``log1p`` of sizes first) with meta-training statistics.

    Attributes:
        mean, std: ``(4,)`` statistics over the meta-training datasets (one row per dataset).
    """

    mean: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)

    @staticmethod
    def raw(meta: Mapping[str, float]) -> np.ndarray:
        """``(4,)`` unscaled descriptors ``log1p(train_size, num_classes, resolution), channels``."""
        missing = [k for k in META_FEATURES if k not in meta]
        if missing:
            raise ValueError(f"meta-features {missing} missing (have {sorted(meta)}); need {list(META_FEATURES)}")
        v = np.array([float(meta[k]) for k in META_FEATURES])
        v[:3] = np.log1p(v[:3])
        return v

    @classmethod
    def fit(cls, metas: Sequence[Mapping[str, float]]) -> MetaFeatureScaler:
        """Fit on the meta-features of the meta-training datasets."""
        if not metas:
            return cls()
        raw = np.stack([cls.raw(m) for m in metas])
        std = raw.std(axis=0)
        std[std < 1e-8] = 1.0
        return cls(tuple(raw.mean(axis=0).tolist()), tuple(std.tolist()))

    def transform(self, meta: Mapping[str, float]) -> np.ndarray:
        """``(4,)`` float32 scaled descriptors of one dataset."""
        return ((self.raw(meta) - np.array(self.mean)) / np.array(self.std)).astype(np.float32)

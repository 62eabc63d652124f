"""The candidate set seen as a mixed-type space: one dimension per hyperparameter, not per encoded column.

The store's encoding (:mod:`metagen.store.encoding`) spreads a categorical over one-hot columns
``name=value`` and a nullable number over ``name`` plus ``name=None``. Model-based baselines want
one dimension per hyperparameter instead:

* **categorical** (one-hot groups, booleans, nullable numbers, any column with at most 2 values):
  an integer level per candidate, levels = distinct encoded rows of the group;
* **continuous** (a plain numeric column with at least 3 distinct values): the value's ordinal
  position among the candidates' distinct values, scaled to [0, 1] (every grid step is equally
  wide, so log-spaced grids such as the learning rate are spread evenly).

Dimensions that are constant over the candidate set carry no information and are dropped.
Imports neither torch nor timm.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.protocol import SearchView


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter of the candidate set.

    Attributes:
        name: hyperparameter name (``model`` for the model one-hot).
        columns: indices of its encoded columns in ``SearchView.features``.
        continuous: ordinal-continuous (True) or categorical (False).
        levels: ``(k, len(columns))`` distinct encoded rows (categorical) or ``(k,)`` sorted distinct
            values (continuous).
    """

    name: str
    columns: tuple[int, ...]
    continuous: bool
    levels: np.ndarray

    @property
    def n_levels(self) -> int:
        """Number of distinct values over the candidates."""
        return int(self.levels.shape[0])


@dataclass(frozen=True)
class MixedSpace:
    """The candidates as points of a mixed space.

    Attributes:
        dims: the non-constant dimensions.
        points: ``(n, len(dims))`` float64: the level index of categorical dimensions, the
            ordinal position in [0, 1] of continuous ones.
        continuous: ``(len(dims),)`` bool mask of continuous dimensions.
        n_levels: ``(len(dims),)`` int, levels per dimension.
    """

    dims: tuple[Dimension, ...]
    points: np.ndarray
    continuous: np.ndarray
    n_levels: np.ndarray

    @property
    def d(self) -> int:
        """Number of dimensions."""
        return len(self.dims)

    def encode(self, row: np.ndarray) -> np.ndarray:
        """A feature row (``(n_features,)``, the view's columns) as a point of this space, ``(d,)``.

        A categorical value no candidate has gets level ``-1``; a continuous one is placed by linear
        interpolation between the neighbouring candidate values.
        """
        out = np.empty(self.d)
        for j, dim in enumerate(self.dims):
            x = row[list(dim.columns)]
            if dim.continuous:
                out[j] = np.interp(x[0], dim.levels, np.linspace(0.0, 1.0, dim.n_levels))
            else:
                match = np.flatnonzero((dim.levels == x[None, :]).all(axis=1))
                out[j] = float(match[0]) if match.size else -1.0
        return out

    def distance(self, points: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Mixed distance of ``points`` ``(k, d)`` (or one point ``(d,)``) to the candidates (all, or
        ``rows``): a mismatched categorical dimension counts 1, a continuous one its absolute ordinal
        difference. ``(k, m)`` (or ``(m,)`` for one point)."""
        x = np.asarray(points, dtype=np.float64)
        one = x.ndim == 1
        x = np.atleast_2d(x)
        pts = self.points if rows is None else self.points[rows]
        cont = self.continuous
        dist = np.abs(x[:, None, cont] - pts[None, :, cont]).sum(axis=2)
        dist += (x[:, None, ~cont] != pts[None, :, ~cont]).sum(axis=2)
        return dist[0] if one else dist


_CACHE: OrderedDict[tuple[int, tuple[str, ...]], tuple[SearchView, MixedSpace]] = OrderedDict()
_CACHE_SIZE = 256


def mixed_space(view: SearchView, exclude: Sequence[str] = ()) -> MixedSpace:
    """The view's candidates as a :class:`MixedSpace` (dimensions named in ``exclude`` left out).

    Cached per view object (the same task replayed with many seeds builds it once).
    """
    key = (id(view), tuple(exclude))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is view:
        _CACHE.move_to_end(key)
        return hit[1]
    space = _build(view, tuple(exclude))
    _CACHE[key] = (view, space)
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return space


def _build(view: SearchView, exclude: tuple[str, ...]) -> MixedSpace:
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(view.feature_names):
        groups.setdefault(name.split("=", 1)[0], []).append(j)
    x = np.asarray(view.features, dtype=np.float64)
    dims, cols = [], []
    for name, idx in groups.items():
        if name in exclude:
            continue
        block = x[:, idx]
        if len(idx) == 1 and "=" not in view.feature_names[idx[0]]:
            levels = np.unique(block[:, 0])
            if levels.size >= 3:
                dims.append(Dimension(name, tuple(idx), True, levels))
                cols.append(np.interp(block[:, 0], levels, np.linspace(0.0, 1.0, levels.size)))
                continue
        levels, codes = np.unique(block, axis=0, return_inverse=True)
        if levels.shape[0] < 2:
            continue
        dims.append(Dimension(name, tuple(idx), False, levels))
        cols.append(codes.reshape(-1).astype(np.float64))
    points = np.stack(cols, axis=1) if cols else np.zeros((view.n, 0))
    return MixedSpace(
        dims=tuple(dims),
        points=points,
        continuous=np.array([d.continuous for d in dims], dtype=bool),
        n_levels=np.array([d.n_levels for d in dims], dtype=np.int64),
    )


def encode_hyperparameters_row(hps: Mapping[str, Any], feature_names: Sequence[str]) -> np.ndarray:
    """Hyperparameters (``{"model": ..., name: value}``, ``None`` = off/inactive) as one feature row,
    following :mod:`metagen.store.encoding`. ``(len(feature_names),)`` float64."""
    row = np.zeros(len(feature_names))
    for j, col in enumerate(feature_names):
        if "=" in col:
            name, level = col.split("=", 1)
            value = hps.get(name)
            row[j] = float(value is None) if level == "None" else float(value is not None and str(value) == level)
        else:
            value = hps.get(col)
            row[j] = 0.0 if value is None else float(value)
    return row

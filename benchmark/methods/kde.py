"""A mixed-type product-kernel density estimate, as BOHB uses it (numpy only).

Matches ``statsmodels.nonparametric.KDEMultivariate(var_type, bw="normal_reference")`` as the
reference BOHB (hpbandster) builds it, on the points of a :class:`~benchmark.methods.space.MixedSpace`:

* continuous dimensions: Gaussian kernel;
* categorical dimensions: Aitchison-Aitken kernel, ``1 - h`` for the same level and
  ``h / (c - 1)`` for each other one;
* bandwidths by the normal reference rule ``1.06 * std * m ** (-1 / (4 + d))`` (population std),
  clipped below at ``min_bandwidth`` (hpbandster); categorical ones also clipped above at
  ``(c - 1) / c`` (the uniform kernel; statsmodels leaves larger values, which give negative weights).

Sampling follows hpbandster's ``get_config``: pick a datum uniformly, then per dimension a truncated
normal on [0, 1] with standard deviation ``bandwidth_factor * h`` (continuous), or keep the level with
probability ``1 - h`` and draw a uniform level otherwise (categorical).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

_LOG_FLOOR = np.log(1e-32)


@dataclass(frozen=True)
class MixedKDE:
    """A fitted density.

    Attributes:
        data: ``(m, d)`` points (categorical dimensions hold level indices).
        bw: ``(d,)`` bandwidths.
        continuous: ``(d,)`` bool.
        n_levels: ``(d,)`` levels per categorical dimension.
    """

    data: np.ndarray
    bw: np.ndarray
    continuous: np.ndarray
    n_levels: np.ndarray

    @classmethod
    def fit(
        cls, data: np.ndarray, continuous: np.ndarray, n_levels: np.ndarray, min_bandwidth: float = 1e-3
    ) -> MixedKDE:
        """Fits the density to ``data`` ``(m, d)`` with normal-reference bandwidths."""
        data = np.asarray(data, dtype=np.float64)
        m, d = data.shape
        bw = 1.06 * data.std(axis=0) * m ** (-1.0 / (4 + d))
        bw = np.maximum(bw, min_bandwidth)
        cat = ~continuous
        upper = (n_levels[cat] - 1) / np.maximum(n_levels[cat], 1)
        bw[cat] = np.minimum(bw[cat], np.maximum(upper, min_bandwidth))
        return cls(data, bw, np.asarray(continuous, dtype=bool), np.asarray(n_levels))

    def log_pdf(self, points: np.ndarray) -> np.ndarray:
        """Log density at ``points`` ``(k, d)``; ``(k,)``."""
        x = np.asarray(points, dtype=np.float64)
        cont, cat = self.continuous, ~self.continuous
        total = np.zeros((x.shape[0], self.data.shape[0]))
        if cont.any():
            h = self.bw[cont]
            z = (x[:, None, cont] - self.data[None, :, cont]) / h
            total += (-0.5 * z**2).sum(axis=2) - np.sum(np.log(h) + 0.5 * np.log(2 * np.pi))
        if cat.any():
            h = self.bw[cat]
            c = self.n_levels[cat]
            same = x[:, None, cat] == self.data[None, :, cat]
            log_same = np.log1p(-h)
            log_other = np.log(h / np.maximum(c - 1, 1))
            total += np.where(same, log_same, log_other).sum(axis=2)
        return logsumexp(total, axis=1) - np.log(self.data.shape[0])

    def sample(self, rng: np.random.Generator, size: int, bandwidth_factor: float = 3.0) -> np.ndarray:
        """``size`` points drawn around the data (hpbandster's sampler); ``(size, d)``."""
        base = self.data[rng.integers(self.data.shape[0], size=size)]
        out = base.copy()
        cont = self.continuous
        if cont.any():
            mu = base[:, cont]
            sd = np.broadcast_to(self.bw[cont] * bandwidth_factor, mu.shape)
            lo, hi = ndtr((0.0 - mu) / sd), ndtr((1.0 - mu) / sd)
            u = lo + rng.random(mu.shape) * (hi - lo)
            out[:, cont] = np.clip(mu + sd * ndtri(np.clip(u, 1e-12, 1 - 1e-12)), 0.0, 1.0)
        cat = np.flatnonzero(~cont)
        if cat.size:
            keep = rng.random((size, cat.size)) < (1.0 - self.bw[cat])
            random_levels = np.floor(rng.random((size, cat.size)) * self.n_levels[cat])
            out[:, cat] = np.where(keep, base[:, cat], random_levels)
        return out


def log_ratio(good: MixedKDE, bad: MixedKDE, points: np.ndarray) -> np.ndarray:
    """``log l(x) - log g(x)`` with both densities floored at 1e-32 (hpbandster); ``(k,)``."""
    return np.maximum(good.log_pdf(points), _LOG_FLOOR) - np.maximum(bad.log_pdf(points), _LOG_FLOOR)

"""``shapes``: procedurally drawn geometric shapes with random colour, size, position, tilt and noisy background."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image, ImageDraw

from metagen.datasets.kinds.base import Generated, Kind, Tolerance, add_noise, always_available, choose_classes

SUPERSAMPLE = 4
MAX_TILT_DEG = 20.0  # small, so that square / diamond and plus / x-cross stay distinct

# A shape is a list of (polygon (k, 2) in unit coordinates within [-1, 1]^2, fill 255 or 0 for a hole), drawn in order.
Layers = list[tuple[np.ndarray, int]]


def _ngon(k: int, phase: float = 0.0, r: float = 1.0, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    t = phase + np.linspace(0.0, 2 * np.pi, k, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _star(points: int, inner: float) -> np.ndarray:
    outer = _ngon(points, -np.pi / 2)
    inner_pts = _ngon(points, -np.pi / 2 + np.pi / points, r=inner)
    return np.stack([outer, inner_pts], axis=1).reshape(-1, 2)


def _poly(*xy: float) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64).reshape(-1, 2)


def _ellipse(rng: np.random.Generator) -> Layers:
    return [(_ngon(64) * [1.0, 1.0 / rng.uniform(1.6, 2.2)], 255)]


def _rectangle(rng: np.random.Generator) -> Layers:
    h = 1.0 / rng.uniform(1.7, 2.3)
    return [(_poly(-1, -h, 1, -h, 1, h, -1, h), 255)]


_FIXED: dict[str, Callable[[], Layers]] = {
    "circle": lambda: [(_ngon(64), 255)],
    "semicircle": lambda: [(np.vstack([_ngon(64)[32:], [[1.0, 0.0]]]) + np.array([0.0, 0.4]), 255)],
    "ring": lambda: [(_ngon(64), 255), (_ngon(64, r=0.55), 0)],
    "crescent": lambda: [(_ngon(64), 255), (_ngon(64, r=0.85, cx=0.45, cy=-0.2), 0)],
    "triangle": lambda: [(_ngon(3, -np.pi / 2) + np.array([0.0, 0.2]), 255)],
    "square": lambda: [(_poly(-0.8, -0.8, 0.8, -0.8, 0.8, 0.8, -0.8, 0.8), 255)],
    "diamond": lambda: [(_poly(0, -1, 0.75, 0, 0, 1, -0.75, 0), 255)],
    "trapezoid": lambda: [(_poly(-0.45, -0.6, 0.45, -0.6, 1, 0.6, -1, 0.6), 255)],
    "parallelogram": lambda: [(_poly(-0.5, -0.6, 1, -0.6, 0.5, 0.6, -1, 0.6), 255)],
    "pentagon": lambda: [(_ngon(5, -np.pi / 2), 255)],
    "hexagon": lambda: [(_ngon(6), 255)],
    "octagon": lambda: [(_ngon(8, np.pi / 8), 255)],
    "star4": lambda: [(_star(4, 0.4), 255)],
    "star5": lambda: [(_star(5, 0.45), 255)],
    "star6": lambda: [(_star(6, 0.55), 255)],
    "plus": lambda: [
        (_poly(-0.3, -1, 0.3, -1, 0.3, 1, -0.3, 1), 255),
        (_poly(-1, -0.3, 1, -0.3, 1, 0.3, -1, 0.3), 255),
    ],
    "arrow": lambda: [(_poly(-1, -0.25, 0.2, -0.25, 0.2, -0.6, 1, 0, 0.2, 0.6, 0.2, 0.25, -1, 0.25), 255)],
    "l_shape": lambda: [(_poly(-0.7, -1, -0.2, -1, -0.2, 0.5, 0.7, 0.5, 0.7, 1, -0.7, 1), 255)],
    "t_shape": lambda: [(_poly(-1, -1, 1, -1, 1, -0.5, 0.25, -0.5, 0.25, 1, -0.25, 1, -0.25, -0.5, -1, -0.5), 255)],
    "heart": lambda: [(_heart(), 255)],
}


def _heart() -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, 96, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y + 2.5], axis=1) / 17.0


def _x_cross() -> Layers:
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    return [(arm @ np.array([[c, s], [-s, c]]), fill) for arm, fill in _FIXED["plus"]()]


def _ignoring_rng(make: Callable[[], Layers]) -> Callable[[np.random.Generator], Layers]:
    """A fixed shape as a shape maker (which takes the random generator)."""
    return lambda rng: make()


SHAPES: dict[str, Callable[[np.random.Generator], Layers]] = {
    **{name: _ignoring_rng(f) for name, f in _FIXED.items()},
    "ellipse": _ellipse,
    "rectangle": _rectangle,
    "x_cross": lambda rng: _x_cross(),
}
SHAPE_NAMES = tuple(sorted(SHAPES))


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Background and shape RGB colours at least 60 grey levels apart."""
    while True:
        bg, fg = rng.integers(0, 256, size=3), rng.integers(0, 256, size=3)
        if abs(float(bg.mean()) - float(fg.mean())) >= 60:
            return bg, fg


def draw(rng: np.random.Generator, shape: str, resolution: int) -> np.ndarray:
    """One (resolution, resolution, 3) uint8 image of ``shape``."""
    layers = SHAPES[shape](rng)
    scale = rng.uniform(0.25, 0.42) * resolution  # unit radius in pixels
    centre = rng.uniform(1.15 * scale, resolution - 1.15 * scale, size=2)  # tilted corners reach ~1.15 radii
    tilt = np.deg2rad(rng.uniform(-MAX_TILT_DEG, MAX_TILT_DEG))
    rot = np.array([[np.cos(tilt), np.sin(tilt)], [-np.sin(tilt), np.cos(tilt)]])
    mask = Image.new("L", (resolution * SUPERSAMPLE, resolution * SUPERSAMPLE), 0)
    pen = ImageDraw.Draw(mask)
    for poly, fill in layers:
        pts = ((poly @ rot) * scale + centre) * SUPERSAMPLE
        pen.polygon([tuple(p) for p in pts.tolist()], fill=fill)
    m = np.asarray(mask.resize((resolution, resolution), Image.Resampling.BOX), dtype=np.float32)[..., None] / 255
    bg, fg = _colours(rng)
    ramp = np.linspace(-1.0, 1.0, resolution, dtype=np.float32)
    gx, gy = rng.uniform(-30, 30, size=2)
    background = bg + (gx * ramp[None, :] + gy * ramp[:, None])[..., None]
    background = background + rng.normal(0, rng.uniform(0, 20), size=(resolution, resolution, 1))  # texture
    img = background * (1 - m) + fg * m
    return add_noise(rng, img, sigma=float(rng.uniform(0, 8)))


def generate(rng: np.random.Generator, n_classes: int, per_class: int, resolution: int) -> Generated:
    """``per_class`` drawings of each of ``n_classes`` random shapes of :data:`SHAPE_NAMES`."""
    names = [SHAPE_NAMES[c] for c in choose_classes(rng, len(SHAPE_NAMES), n_classes)]

    def frames() -> Iterator[np.ndarray]:
        for name in names:
            for _ in range(per_class):
                yield draw(rng, name, resolution)

    return Generated(class_names=tuple(names), images=frames())


KIND = Kind(
    name="shapes",
    domain="Synthetic shapes",
    description=f"procedural geometric shapes ({len(SHAPE_NAMES)} classes) with random colour/size/position/tilt/noise",
    source="generated by metagen.datasets.kinds.shapes (numpy + PIL)",
    license="generated, no third-party content",
    max_classes=len(SHAPE_NAMES),
    max_per_class=None,
    unavailable=always_available,
    generate=generate,
    # every shape class is closed under mirroring; small crops cut the shape
    tolerates=Tolerance(hflip=True, min_crop_scale=0.35),
)

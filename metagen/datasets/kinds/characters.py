"""``characters``: printed characters rendered with PIL from the system's fonts, OmniPrint-like (Meta-Album OCR)."""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from metagen.datasets.errors import SourceUnavailableError
from metagen.datasets.kinds.base import Generated, Kind, Tolerance, add_noise, choose_classes

ENV_FONTS = "METAGEN_FONT_DIRS"
DEFAULT_FONT_DIRS = ("/usr/share/fonts",)
# Latin capitals, digits, and the Greek and Cyrillic capitals that look like no other member; O/0, I/1 and the
# Cyrillic twins of Greek letters (Г/Γ, П/Π, Л/Λ, Ф/Φ) and of 3 (З) are left out.
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789ΓΔΘΛΞΠΣΦΨΩБДЖИЦЧШЩЭЮЯ"
SUPERSAMPLE = 2
_PROBE_SIZE = 32
_MISSING = "\U0010fffd"  # a private-use code point: renders as the font's .notdef box


def font_dirs() -> list[Path]:
    """``$METAGEN_FONT_DIRS`` (os.pathsep-separated) or /usr/share/fonts."""
    env = os.environ.get(ENV_FONTS)
    return [Path(p) for p in (env.split(os.pathsep) if env else DEFAULT_FONT_DIRS) if p]


@functools.cache
def find_fonts() -> tuple[Path, ...]:
    """Every .ttf/.otf file under :func:`font_dirs`, sorted by path (so the choice is reproducible per machine)."""
    found = {p for d in font_dirs() if d.is_dir() for p in d.rglob("*") if p.suffix.lower() in (".ttf", ".otf")}
    return tuple(sorted(found))


def unavailable() -> str | None:
    """Why no font can be used here, or None."""
    if find_fonts():
        return None
    dirs = ", ".join(str(d) for d in font_dirs())
    return (f"no .ttf/.otf fonts under {dirs}. Install some (`apt-get install fonts-dejavu-core`) or set "
            f"${ENV_FONTS} to folders that hold fonts.")  # fmt: skip


def _mask(font: ImageFont.FreeTypeFont, char: str) -> bytes:
    return bytes(font.getmask(char))


@functools.cache
def fonts_for(char: str) -> tuple[Path, ...]:
    """The fonts that have a real glyph (not the .notdef box, not blank) for ``char``."""
    good = []
    for path in find_fonts():
        try:
            font = ImageFont.truetype(str(path), _PROBE_SIZE)
        except OSError:
            continue
        glyph = _mask(font, char)
        if any(glyph) and glyph != _mask(font, _MISSING):
            good.append(path)
    return tuple(good)


@functools.cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def _contrasting_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Background and ink RGB colours whose grey levels differ by at least 80."""
    while True:
        bg, ink = rng.integers(0, 256, size=3), rng.integers(0, 256, size=3)
        if abs(float(bg.mean()) - float(ink.mean())) >= 80:
            return bg, ink


def render(rng: np.random.Generator, char: str, fonts: tuple[Path, ...], resolution: int) -> np.ndarray:
    """One (resolution, resolution, 3) uint8 image of ``char``: random font, size, offset, rotation, colours,
    background gradient and noise."""
    canvas = resolution * SUPERSAMPLE
    font = _font(fonts[int(rng.integers(len(fonts)))], max(4, int(canvas * rng.uniform(0.5, 0.8))))
    mask = Image.new("L", (canvas, canvas), 0)
    dx, dy = rng.uniform(-0.12, 0.12, size=2) * canvas
    ImageDraw.Draw(mask).text((canvas / 2 + dx, canvas / 2 + dy), char, fill=255, font=font, anchor="mm")
    mask = mask.rotate(float(rng.uniform(-20, 20)), resample=Image.Resampling.BICUBIC)
    m = np.asarray(mask.resize((resolution, resolution), Image.Resampling.LANCZOS), dtype=np.float32)[..., None] / 255
    bg, ink = _contrasting_pair(rng)
    ramp = np.linspace(-1.0, 1.0, resolution, dtype=np.float32)
    gx, gy = rng.uniform(-25, 25, size=2)
    gradient = (gx * ramp[None, :] + gy * ramp[:, None])[..., None]
    img = (bg + gradient) * (1 - m) + ink * m
    return add_noise(rng, img, sigma=float(rng.uniform(0, 12)))


def generate(rng: np.random.Generator, n_classes: int, per_class: int, resolution: int) -> Generated:
    """``per_class`` renders of each of ``n_classes`` random characters of :data:`ALPHABET`."""
    reason = unavailable()
    if reason:
        raise SourceUnavailableError(reason)
    chars = [ALPHABET[c] for c in choose_classes(rng, len(ALPHABET), n_classes)]
    fonts = {c: fonts_for(c) for c in chars}
    lacking = [c for c, f in fonts.items() if not f]
    if lacking:
        raise SourceUnavailableError(
            f"no installed font has a glyph for {lacking}; install fonts-dejavu-core or set ${ENV_FONTS}"
        )

    def frames() -> Iterator[np.ndarray]:
        for c in chars:
            for _ in range(per_class):
                yield render(rng, c, fonts[c], resolution)

    used = sorted({p.name for f in fonts.values() for p in f})
    return Generated(
        class_names=tuple(unicodedata.name(c) for c in chars),
        images=frames(),
        info={"fonts": used, "font_dirs": [str(d) for d in font_dirs()], "characters": "".join(chars)},
    )


KIND = Kind(
    name="characters",
    domain="OCR (printed)",
    description="printed Latin/Greek/Cyrillic capitals and digits rendered from system fonts with jitter and noise",
    source="rendered with PIL from the .ttf/.otf fonts under /usr/share/fonts (e.g. DejaVu)",
    license="generated images; fonts keep their own licenses (DejaVu: free, Bitstream Vera derived)",
    max_classes=len(ALPHABET),
    max_per_class=None,
    unavailable=unavailable,
    generate=generate,
    # a mirrored character is another glyph or none; small crops cut strokes
    tolerates=Tolerance(hflip=False, min_crop_scale=0.5),
)

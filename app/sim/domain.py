"""Appearance domains: how the simulated camera looks (``config/domains/*.yaml``).

A domain has three parts: ``render`` (TinyRenderer lighting, shadows, table and object looks),
``image`` (white balance, gamma, vignetting, blur, noise on the RGB image) and ``depth`` (either
``exact`` or an SR300-like sensor model). The simulated camera passes its camera profile's depth
range and unit (``config/hardware.yaml``), which replace the domain's ``valid_range`` and
``unit``: the sensor is the configured camera's. The same world state can be rendered in any domain,
which gives paired images for evaluation. All image operations are plain numpy/OpenCV.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from app.config import Section, file_sha256, load_yaml, resolve
from app.errors import ConfigError
from app.sim.pybullet_world import RenderSettings

_TOP_KEYS = {"name", "description", "render", "image", "depth"}


@dataclass(frozen=True)
class TableLook:
    """Table top: base colour (RGB in [0, 1]) and an optional procedural texture."""

    color: tuple[float, float, float]
    texture: str  # "none", "grain" (wood/laminate), "clutter" (non-uniform, many colours)
    texture_contrast: float
    texture_seed: int


@dataclass(frozen=True)
class ImageModel:
    """Colour-pipeline and optics effects applied to the rendered RGB."""

    white_balance: tuple[float, float, float]  # per-channel gains
    gamma: float  # output = input ** (1 / gamma) on [0, 1]
    vignetting: float  # relative darkening at the image corners, [0, 1)
    blur_sigma: float  # px, Gaussian defocus blur (0 = none)
    noise_std: float  # std of additive Gaussian noise on the 0-255 scale


@dataclass(frozen=True)
class DepthModel:
    """Depth sensor model. ``kind: exact`` returns the rendered depth unchanged."""

    kind: str  # "exact" or "sr300"
    valid_range: tuple[float, float]  # m; outside reads 0 (the camera profile's replaces it)
    unit: float  # m per quantisation step (SR300: 0.000125; the camera profile's replaces it)
    noise_base: float  # m, std at zero distance
    noise_quadratic: float  # 1/m, std grows as noise_quadratic * z**2 (structured-light)
    correlated_noise: float  # m per m of depth, low-frequency (16x16) correlated error
    edge_threshold: float  # m, depth jump between neighbours that counts as an edge
    edge_dropout: float  # probability a pixel at a depth edge reads 0
    dark_threshold: float  # luminance (0-255) under which a surface counts as dark
    dark_dropout: float  # probability a dark pixel reads 0
    speckle_dropout: float  # probability any pixel reads 0


@dataclass(frozen=True)
class Domain:
    """One appearance domain, loaded from YAML."""

    name: str
    path: str
    sha256: str
    render: RenderSettings
    table: TableLook
    object_hue_shift: float  # degrees added to the hue of every object colour
    object_saturation: float  # multiplier
    object_value: float  # multiplier
    gripper_color: tuple[float, float, float]
    image: ImageModel
    depth: DepthModel

    # ---------------------------------------------------------------- colours
    def object_rgba(self, base_rgb: tuple[float, float, float]) -> tuple[float, float, float, float]:
        """The object's colour in this domain, from its sim-domain colour (RGB in [0, 1])."""
        h, s, v = colorsys.rgb_to_hsv(*base_rgb)
        h = (h + self.object_hue_shift / 360.0) % 1.0
        s = float(np.clip(s * self.object_saturation, 0, 1))
        v = float(np.clip(v * self.object_value, 0, 1))
        return (*colorsys.hsv_to_rgb(h, s, v), 1.0)

    def table_texture(self, size: int = 256) -> np.ndarray | None:
        """Procedural RGB uint8 texture of the table top, or None for a flat table."""
        t = self.table
        if t.texture == "none":
            return None
        rng = np.random.default_rng(t.texture_seed)
        base = np.array(t.color, dtype=np.float64)
        if t.texture == "grain":  # fine streaks along one axis plus soft blotches
            streaks = cv2.resize(rng.normal(0, 1, (size, 8)), (size, size), interpolation=cv2.INTER_CUBIC)
            blotch = cv2.resize(rng.normal(0, 1, (8, 8)), (size, size), interpolation=cv2.INTER_CUBIC)
            fine = rng.normal(0, 0.3, (size, size))
            field = (0.6 * streaks + 0.4 * blotch + fine) * t.texture_contrast
            img = base[None, None, :] * (1.0 + field[..., None])
        elif t.texture == "clutter":  # many coloured patches: a non-uniform background
            img = np.tile(base, (size, size, 1))
            for _ in range(40):  # patches of paper, tools and packaging on the table
                colour = rng.uniform(0.1, 0.95, 3)
                c = rng.integers(0, size, 2)
                axes = rng.integers(size // 30, size // 8, 2)
                cv2.ellipse(img, (int(c[0]), int(c[1])), (int(axes[0]), int(axes[1])),
                            float(rng.uniform(0, 180)), 0, 360, colour.tolist(), -1)
            img = img * (1.0 + rng.normal(0, 0.15 * t.texture_contrast, (size, size, 1)))
        else:  # validated at load time
            raise ConfigError(f"{self.path}: unknown table texture {t.texture!r}")
        return (np.clip(img, 0, 1) * 255).astype(np.uint8)

    # ---------------------------------------------------------------- images
    def apply_rgb(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Apply white balance, gamma, vignetting, blur and noise to a rendered RGB image."""
        m = self.image
        if m == _IDENTITY_IMAGE:
            return rgb
        x = rgb.astype(np.float32) / 255.0
        x *= np.asarray(m.white_balance, np.float32)
        np.clip(x, 0, 1, out=x)
        if m.gamma != 1.0:
            x = np.power(x, 1.0 / m.gamma)
        if m.vignetting > 0:
            x *= _vignette(rgb.shape[0], rgb.shape[1], m.vignetting)[..., None]
        if m.blur_sigma > 0:
            x = cv2.GaussianBlur(x, (0, 0), m.blur_sigma)
        x *= 255.0
        if m.noise_std > 0:
            x += rng.normal(0.0, m.noise_std, x.shape).astype(np.float32)
        return np.clip(x + 0.5, 0, 255).astype(np.uint8)

    def apply_depth(self, depth: np.ndarray, rgb: np.ndarray, rng: np.random.Generator, *,
                    valid_range: tuple[float, float] | None = None,
                    unit: float | None = None) -> np.ndarray:
        """Turn exact rendered depth (m, 0 = nothing) into what this domain's sensor reads.

        Args:
            depth: (H, W) float32 exact depth along the optical axis (m).
            rgb: (H, W, 3) uint8 image of the same view (dark surfaces lose depth).
            rng: Random generator of this frame.
            valid_range: The camera profile's depth range (m), replacing the domain's
                ``valid_range`` (the simulated camera is the configured one).
            unit: The camera profile's depth unit (m), replacing the domain's ``unit``.
        """
        d = self.depth
        if d.kind == "exact":
            return depth
        if valid_range is not None or unit is not None:
            d = replace(d, valid_range=valid_range or d.valid_range, unit=unit or d.unit)
        z = depth.astype(np.float32).copy()
        h, w = z.shape
        valid = z > 0
        noise_std = d.noise_base + d.noise_quadratic * z * z
        z += rng.normal(0.0, 1.0, z.shape).astype(np.float32) * noise_std
        if d.correlated_noise > 0:
            low = rng.normal(0.0, 1.0, (16, 16)).astype(np.float32)  # 16x16: ~8 px blobs at 128 px
            z += cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC) * d.correlated_noise * z
        drop = ~valid
        # Depth edges: the projector pattern is occluded or smeared at discontinuities.
        pad = np.pad(depth, 1, mode="edge")
        jump = np.zeros_like(depth)
        for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
            jump = np.maximum(jump, np.abs(pad[dy:dy + h, dx:dx + w] - depth))
        edges = cv2.dilate((jump > d.edge_threshold).astype(np.uint8), np.ones((2, 2), np.uint8)) > 0
        drop |= edges & (rng.random(z.shape) < d.edge_dropout)
        # Dark surfaces absorb the infrared pattern.
        lum = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        drop |= (lum < d.dark_threshold) & (rng.random(z.shape) < d.dark_dropout)
        drop |= rng.random(z.shape) < d.speckle_dropout
        drop |= (z < d.valid_range[0]) | (z > d.valid_range[1])
        z = np.round(z / d.unit) * d.unit
        z[drop] = 0.0
        return z.astype(np.float32)


_IDENTITY_IMAGE = ImageModel((1.0, 1.0, 1.0), 1.0, 0.0, 0.0, 0.0)
_VIGNETTES: dict[tuple[int, int, float], np.ndarray] = {}


def _vignette(h: int, w: int, strength: float) -> np.ndarray:
    key = (h, w, strength)
    if key not in _VIGNETTES:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - (w - 1) / 2) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2
        _VIGNETTES[key] = (1.0 - strength * r2 / 2.0).astype(np.float32)  # corners: r2 = 2
    return _VIGNETTES[key]


def load_domain(name_or_path: str | Path) -> Domain:
    """Load a domain by name (``sim``, ``real``, ...) or from a YAML path.

    Raises:
        ConfigError: One line naming the file and key on any problem.
    """
    path = resolve(name_or_path, "domains")
    root = Section(load_yaml(path), path)
    root.unknown_keys(_TOP_KEYS)
    r = root.section("render")
    r.unknown_keys({"light_direction", "light_color", "ambient", "diffuse", "specular", "shadows",
                    "table", "object", "gripper_color"})
    table = r.section("table")
    table.unknown_keys({"color", "texture", "texture_contrast", "texture_seed"})
    obj = r.section("object", {})
    obj.unknown_keys({"hue_shift", "saturation", "value"})
    im = root.section("image", {})
    im.unknown_keys({"white_balance", "gamma", "vignetting", "blur_sigma", "noise_std"})
    dp = root.section("depth")
    dp.unknown_keys({"model", "valid_range", "unit", "noise_base", "noise_quadratic", "correlated_noise",
                     "edge_threshold", "edge_dropout", "dark_threshold", "dark_dropout", "speckle_dropout"})
    kind = dp.string("model", choices=["exact", "sr300"])
    sr = kind == "sr300"
    vr = dp.vector("valid_range", 2, default=[0.0, 100.0], lo=0.0, hi=100.0)
    if vr[0] >= vr[1]:
        raise dp.error("valid_range", "[min, max] with min < max", vr)
    return Domain(
        name=root.string("name", default=path.stem),
        path=str(path),
        sha256=file_sha256(path),
        render=RenderSettings(
            light_direction=tuple(r.vector("light_direction", 3, lo=-10, hi=10)),
            light_color=tuple(r.vector("light_color", 3, lo=0, hi=2)),
            ambient=r.number("ambient", lo=0, hi=2),
            diffuse=r.number("diffuse", lo=0, hi=2),
            specular=r.number("specular", lo=0, hi=2),
            shadows=r.boolean("shadows"),
        ),
        table=TableLook(
            color=tuple(table.vector("color", 3, lo=0, hi=1)),
            texture=table.string("texture", default="none", choices=["none", "grain", "clutter"]),
            texture_contrast=table.number("texture_contrast", default=0.0, lo=0, hi=1),
            texture_seed=table.integer("texture_seed", default=0, lo=0),
        ),
        object_hue_shift=obj.number("hue_shift", default=0.0, lo=-180, hi=180),
        object_saturation=obj.number("saturation", default=1.0, lo=0, hi=3),
        object_value=obj.number("value", default=1.0, lo=0, hi=3),
        gripper_color=tuple(r.vector("gripper_color", 3, lo=0, hi=1)),
        image=ImageModel(
            white_balance=tuple(im.vector("white_balance", 3, default=[1.0, 1.0, 1.0], lo=0.1, hi=3)),
            gamma=im.number("gamma", default=1.0, lo=0.2, hi=5),
            vignetting=im.number("vignetting", default=0.0, lo=0, hi=0.99),
            blur_sigma=im.number("blur_sigma", default=0.0, lo=0, hi=10),
            noise_std=im.number("noise_std", default=0.0, lo=0, hi=100),
        ),
        depth=DepthModel(
            kind=kind,
            valid_range=(vr[0], vr[1]),
            unit=dp.number("unit", default=0.000125 if sr else 1e-9, lo=1e-9, hi=0.1),
            noise_base=dp.number("noise_base", default=0.0, lo=0, hi=0.1),
            noise_quadratic=dp.number("noise_quadratic", default=0.0, lo=0, hi=1),
            correlated_noise=dp.number("correlated_noise", default=0.0, lo=0, hi=0.2),
            edge_threshold=dp.number("edge_threshold", default=0.01, lo=1e-4, hi=1),
            edge_dropout=dp.number("edge_dropout", default=0.0, lo=0, hi=1),
            dark_threshold=dp.number("dark_threshold", default=0.0, lo=0, hi=255),
            dark_dropout=dp.number("dark_dropout", default=0.0, lo=0, hi=1),
            speckle_dropout=dp.number("speckle_dropout", default=0.0, lo=0, hi=1),
        ),
    )

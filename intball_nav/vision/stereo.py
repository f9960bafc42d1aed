"""Depth images and point clouds for the geometric localizer (``geometry.IcpLocalizer``).

Two named depth sources (``DEPTH_SOURCES``):

- ``"stereo"``: the rear navigation pair (``nav_left`` / ``nav_right``, 320x240, 5 cm baseline,
  rectified: identical intrinsics and orientation, right camera 0.05 m along the left optical x)
  through OpenCV semi-global block matching, ``depth_from_stereo``. With ``fx = 160`` px and
  ``b = 0.05`` m the disparity is only ``8 / Z`` px, so the depth error grows as
  ``Z^2 / (fx b) * sigma_d`` = 0.125 m per pixel of disparity error at 1 m and 0.5 m/px at 2 m:
  stereo depth is useful to about 2 m (see docs/localization.md, "Depth and ICP").
- ``"simulated-depth-sensor"``: the renderer's exact depth image passed through
  ``SimulatedDepthSensor`` (range limits, seeded noise ``sigma = a + b Z^2`` and dropout), a
  stand-in for a time-of-flight or structured-light camera. It is named so because the real
  robot has no such sensor: results obtained with it are an upper bound.

Depth images are (H, W) float32, metres **along the optical axis** (z-depth, what the renderer and
``depth_image_proc`` produce), NaN where invalid. Points are in the camera optical frame
(+z out of the lens, +x right, +y down), metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DEPTH_SOURCES = ("stereo", "simulated-depth-sensor")


@dataclass(frozen=True)
class StereoParams:
    """Semi-global block matching tuned for the 320x240 rendered navigation pair.

    num_disparities : px, search range (multiple of 16); 48 px = 8 / 48 = 0.17 m closest depth.
    block_size : px, odd; 5 keeps thin structures at 320x240 and the rack textures give enough
        contrast for it.
    p1_scale, p2_scale : SGBM smoothness penalties as multiples of ``block_size^2`` (OpenCV's
        recommended 8 and 32 for one channel).
    uniqueness_ratio : %, margin by which the best cost must win (rejects repetitive texture).
    speckle_window, speckle_range : px area and disparity range (px) of speckle filtering.
    disp12_max_diff : px, left-right consistency check.
    min_disparity_px : smallest disparity kept (px); 2 px is 4 m, beyond which depth is noise.
    min_depth, max_depth : m, depths kept (others NaN).
    """

    num_disparities: int = 48
    block_size: int = 5
    p1_scale: float = 8.0
    p2_scale: float = 32.0
    uniqueness_ratio: int = 10
    speckle_window: int = 60
    speckle_range: int = 2
    disp12_max_diff: int = 1
    pre_filter_cap: int = 31
    min_disparity_px: float = 2.0
    min_depth: float = 0.15
    max_depth: float = 4.0
    full_dp: bool = True
    """8-path SGBM (``STEREO_SGBM_MODE_HH``): disparity error MAD 0.084 px at 0.5-3 m on rendered
    frames vs 0.123 px for the 3-way mode, at about twice the cost (10-13 ms vs 6 ms)."""

    def __post_init__(self) -> None:
        if self.num_disparities <= 0 or self.num_disparities % 16:
            raise ValueError(
                f"StereoParams.num_disparities={self.num_disparities}: must be a positive multiple of 16"
            )
        if self.block_size < 1 or self.block_size % 2 == 0:
            raise ValueError(f"StereoParams.block_size={self.block_size}: must be odd and >= 1")
        if not 0.0 < self.min_depth < self.max_depth:
            raise ValueError(f"StereoParams depth range [{self.min_depth}, {self.max_depth}] m is empty")

    def matcher(self) -> cv2.StereoSGBM:
        bs2 = self.block_size * self.block_size
        return cv2.StereoSGBM.create(
            minDisparity=0,
            numDisparities=self.num_disparities,
            blockSize=self.block_size,
            P1=int(self.p1_scale * bs2),
            P2=int(self.p2_scale * bs2),
            disp12MaxDiff=self.disp12_max_diff,
            preFilterCap=self.pre_filter_cap,
            uniquenessRatio=self.uniqueness_ratio,
            speckleWindowSize=self.speckle_window,
            speckleRange=self.speckle_range,
            mode=cv2.STEREO_SGBM_MODE_HH if self.full_dp else cv2.STEREO_SGBM_MODE_SGBM_3WAY,
        )


def _gray(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if img.dtype != np.uint8:
        raise ValueError(f"stereo images must be uint8, got {img.dtype}")
    return img


def depth_from_stereo(
    left_gray: np.ndarray,
    right_gray: np.ndarray,
    model_left,
    baseline: float,
    params: StereoParams | None = None,
) -> np.ndarray:
    """Depth image of the left camera from a rectified stereo pair.

    left_gray, right_gray : (H,W) uint8 (RGB (H,W,3) is converted), rectified, the right camera
        ``baseline`` m along the left optical +x axis (ROS convention, ``Tx = -fx * baseline``).
    model_left : camera model with ``K`` (3,3) px (``intball_sim.camera.CameraModel``).
    baseline : m, > 0.
    Returns (H,W) float32 depth, m along the left optical axis, NaN where invalid (no match,
    left-right inconsistent, outside ``[min_depth, max_depth]``).
    """
    p = params if params is not None else StereoParams()
    if baseline <= 0.0:
        raise ValueError(f"baseline must be > 0 m, got {baseline}")
    left, right = _gray(left_gray), _gray(right_gray)
    if left.shape != right.shape:
        raise ValueError(f"stereo images differ in size: {left.shape} vs {right.shape}")
    disp = p.matcher().compute(left, right).astype(np.float32) / 16.0  # fixed point, 4 fractional bits
    fx = float(np.asarray(model_left.K)[0, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(disp >= p.min_disparity_px, fx * baseline / disp, np.nan).astype(np.float32)
    depth[(depth < p.min_depth) | (depth > p.max_depth)] = np.nan
    # SGBM leaves the left num_disparities columns unmatched (they have no partner in the right image)
    depth[:, : p.num_disparities] = np.nan
    return depth


@dataclass(frozen=True)
class SimulatedDepthSensor:
    """The ``"simulated-depth-sensor"`` source: an ideal rendered depth image made sensor-like.

    sigma_const, sigma_quad : noise std ``sigma_const + sigma_quad * Z^2`` (m), Gaussian, seeded;
        defaults are typical of a small time-of-flight camera (about 2 mm + 2 mm/m^2).
    min_depth, max_depth : m, valid range (others NaN).
    dropout : fraction of pixels randomly invalid (NaN).
    """

    sigma_const: float = 0.002
    sigma_quad: float = 0.002
    min_depth: float = 0.1
    max_depth: float = 6.0
    dropout: float = 0.0

    def measure(self, rendered_depth: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """(H,W) float32 depth (m along the optical axis, NaN invalid) of a rendered (H,W) depth."""
        rng = rng if rng is not None else np.random.default_rng(0)
        z = np.asarray(rendered_depth, dtype=np.float64)
        sigma = self.sigma_const + self.sigma_quad * z * z
        out = z + sigma * rng.standard_normal(z.shape)
        bad = ~np.isfinite(z) | (z < self.min_depth) | (z > self.max_depth)
        if self.dropout > 0.0:
            bad |= rng.random(z.shape) < self.dropout
        out[bad] = np.nan
        return out.astype(np.float32)


def cloud_from_depth(
    depth: np.ndarray,
    model,
    stride: int = 2,
    min_depth: float = 0.1,
    max_depth: float = np.inf,
) -> np.ndarray:
    """Back-project a depth image into the camera optical frame.

    depth : (H,W) m along the optical axis (NaN or non-finite = invalid), from either source.
    model : camera model with ``K`` (3,3) px; pixel (0, 0) is the centre of the top-left pixel.
    stride : px, keep every ``stride``-th row and column (2 at 320x240 gives <= 19200 points).
    min_depth, max_depth : m, depth range kept.
    Returns (N,3) float64 points, m, camera optical frame (+z forward, +x right, +y down).
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    K = np.asarray(model.K, dtype=float)
    z = np.asarray(depth, dtype=np.float64)[::stride, ::stride]
    v, u = np.mgrid[0 : depth.shape[0] : stride, 0 : depth.shape[1] : stride]
    ok = np.isfinite(z) & (z >= min_depth) & (z <= max_depth)
    z, u, v = z[ok], u[ok].astype(float), v[ok].astype(float)
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=1)

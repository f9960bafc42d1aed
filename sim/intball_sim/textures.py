"""Procedural, deterministic textures of the Kibo interior (numpy + cv2, no files needed).

Every function returns an RGB ``uint8`` image (H, W, 3). Row 0 is the top edge of the
surface (its face-frame +y side), column 0 its left edge (face-frame -x side) as seen from
inside the cabin. The same name always gives the same image (seeded by a CRC of the name),
and different names give different layouts, colours and labels, so feature trackers (ORB)
find distinct texture on every bay.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

TEXTURE_VERSION = 1
"""Bump when any drawing changes (part of the world cache key)."""

PX_PER_M = 256
"""Texture resolution of rack panels and walls, pixels per metre."""

# Rack front colours seen in Kibo: off-white, beige, light greys, pale blue/green experiment racks.
_RACK_COLOURS = (
    (226, 224, 214),
    (216, 208, 188),
    (200, 202, 204),
    (186, 198, 212),
    (196, 210, 196),
    (232, 230, 226),
    (176, 180, 186),
)
_CABLE_COLOURS = ((30, 30, 30), (60, 60, 70), (200, 200, 200), (40, 70, 140), (150, 40, 40), (210, 170, 40))
_WORDS = (
    "JEM",
    "KIBO",
    "SAIBO",
    "RYUTAI",
    "KOBAIRO",
    "MSPR",
    "ICS",
    "DMS",
    "EPS",
    "TCS",
    "ECLSS",
    "STOWAGE",
    "ER-4",
    "FPEF",
    "CBEF",
    "AQH",
    "IMAGE PROC",
    "PWR",
    "DATA",
    "LAN",
    "COOLANT",
    "DO NOT STEP",
    "HANDHOLD",
    "RESUPPLY",
    "CTB",
    "NO STOW",
)


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _px(metres: float) -> int:
    return max(1, round(metres * PX_PER_M))


def _shade(colour: tuple[int, ...], factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)  # type: ignore[return-value]


def _grain(img: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Add low-frequency mottling and fine grain (gives ORB something on flat areas)."""
    h, w = img.shape[:2]
    low = cv2.resize(
        rng.normal(0.0, sigma, (max(2, h // 32), max(2, w // 32))), (w, h), interpolation=cv2.INTER_CUBIC
    )
    fine = rng.normal(0.0, 0.4 * sigma, (h, w))
    out = img.astype(np.float32) + (low + fine)[:, :, None].astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def _bolt(img: np.ndarray, x: int, y: int, r: int) -> None:
    cv2.circle(img, (x, y), r, (95, 95, 98), -1, cv2.LINE_AA)
    cv2.circle(img, (x, y), r, (50, 50, 52), 1, cv2.LINE_AA)
    cv2.line(img, (x - r + 1, y), (x + r - 1, y), (40, 40, 40), 1, cv2.LINE_AA)


def _label(img: np.ndarray, rng: np.random.Generator, x: int, y: int, text: str, scale: float) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    pad = 3
    bg = ((250, 250, 245), (250, 230, 80), (230, 240, 255), (255, 255, 255))[int(rng.integers(4))]
    h, w = img.shape[:2]
    x = int(np.clip(x, 0, max(0, w - tw - 2 * pad)))
    y = int(np.clip(y, th + pad, max(th + pad, h - base - pad)))
    cv2.rectangle(img, (x, y - th - pad), (x + tw + 2 * pad, y + base + pad), bg, -1)
    cv2.rectangle(img, (x, y - th - pad), (x + tw + 2 * pad, y + base + pad), (60, 60, 60), 1)
    cv2.putText(img, text, (x + pad, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)


def _handrail(img: np.ndarray, p0: tuple[int, int], p1: tuple[int, int], width: int) -> None:
    """A yellow-ish ISS handrail with two standoff brackets."""
    cv2.line(img, p0, p1, (120, 110, 60), width + 2, cv2.LINE_AA)
    cv2.line(img, p0, p1, (225, 200, 70), width, cv2.LINE_AA)
    for t in (0.1, 0.9):
        c = (int(p0[0] + t * (p1[0] - p0[0])), int(p0[1] + t * (p1[1] - p0[1])))
        cv2.circle(img, c, width, (90, 90, 95), -1, cv2.LINE_AA)


def _cable(img: np.ndarray, rng: np.random.Generator) -> None:
    """A cable drawn as a smooth random curve across part of the panel."""
    h, w = img.shape[:2]
    pts = np.cumsum(rng.normal(0.0, 1.0, (4, 2)) * [w * 0.3, h * 0.15], axis=0)
    pts += [rng.uniform(0, w), rng.uniform(0, h)]
    t = np.linspace(0.0, 1.0, 40)[:, None]
    b = (1 - t) ** 3 * pts[0] + 3 * (1 - t) ** 2 * t * pts[1] + 3 * (1 - t) * t**2 * pts[2] + t**3 * pts[3]
    colour = _CABLE_COLOURS[int(rng.integers(len(_CABLE_COLOURS)))]
    thick = int(rng.integers(2, 6))
    poly = b.astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(img, [poly], False, _shade(colour, 0.6), thick + 2, cv2.LINE_AA)
    cv2.polylines(img, [poly], False, colour, thick, cv2.LINE_AA)


def rack_panel(name: str, width_m: float, height_m: float) -> np.ndarray:
    """Front of one rack bay: lockers/drawers with edges, handles, bolts, labels, cables,
    handrails and surface grain. width_m, height_m : m along the face-frame x and y axes."""
    rng = _rng("rack:" + name)
    w, h = _px(width_m), _px(height_m)
    base = _RACK_COLOURS[int(rng.integers(len(_RACK_COLOURS)))]
    img = np.empty((h, w, 3), np.uint8)
    img[:] = base
    # frame of the rack: a darker border and posts
    border = max(3, _px(0.03))
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), _shade(base, 0.55), border)
    # split the long axis into 3-6 modules, each a locker grid or a single panel
    long_is_y = h >= w
    n_mod = int(rng.integers(3, 7))
    cuts = np.sort(rng.uniform(0.12, 0.88, n_mod - 1))
    edges = np.concatenate([[0.0], cuts, [1.0]])
    for i in range(n_mod):
        a, b = edges[i], edges[i + 1]
        if long_is_y:
            x0, x1, y0, y1 = border, w - border, int(a * h) + border // 2, int(b * h) - border // 2
        else:
            x0, x1, y0, y1 = int(a * w) + border // 2, int(b * w) - border // 2, border, h - border
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        colour = base if rng.random() < 0.6 else _RACK_COLOURS[int(rng.integers(len(_RACK_COLOURS)))]
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        cv2.rectangle(img, (x0, y0), (x1, y1), _shade(colour, 0.5), 2)
        cv2.line(img, (x0 + 2, y0 + 2), (x1 - 2, y0 + 2), _shade(colour, 1.12), 1)
        nx, ny = (int(rng.integers(1, 4)), int(rng.integers(1, 3)))
        if not long_is_y:
            nx, ny = ny, nx
        for ix in range(nx):
            for iy in range(ny):
                cx0 = x0 + (x1 - x0) * ix // nx + 3
                cx1 = x0 + (x1 - x0) * (ix + 1) // nx - 3
                cy0 = y0 + (y1 - y0) * iy // ny + 3
                cy1 = y0 + (y1 - y0) * (iy + 1) // ny - 3
                if cx1 - cx0 < 12 or cy1 - cy0 < 12:
                    continue
                cv2.rectangle(img, (cx0, cy0), (cx1, cy1), _shade(colour, 0.7), 1)
                # drawer handle
                hx, hy = (cx0 + cx1) // 2, cy0 + max(6, (cy1 - cy0) // 5)
                hw = max(6, (cx1 - cx0) // 5)
                cv2.rectangle(img, (hx - hw, hy - 2), (hx + hw, hy + 2), (70, 70, 75), -1)
                for bx, by in (
                    (cx0 + 5, cy0 + 5),
                    (cx1 - 5, cy0 + 5),
                    (cx0 + 5, cy1 - 5),
                    (cx1 - 5, cy1 - 5),
                ):
                    _bolt(img, bx, by, 3)
                if rng.random() < 0.5:
                    text = f"{_WORDS[int(rng.integers(len(_WORDS)))]} {int(rng.integers(1, 99)):02d}"
                    _label(img, rng, cx0 + 6, cy1 - 8, text, 0.35)
        if rng.random() < 0.25:
            # a small display / control panel with LEDs
            px0, py0 = x0 + (x1 - x0) // 6, y0 + (y1 - y0) // 3
            px1, py1 = px0 + (x1 - x0) // 3, py0 + (y1 - y0) // 4
            cv2.rectangle(img, (px0, py0), (px1, py1), (40, 45, 50), -1)
            for k in range(int(rng.integers(2, 6))):
                led = ((40, 200, 60), (230, 50, 40), (240, 180, 30))[int(rng.integers(3))]
                cv2.circle(img, (px0 + 6 + 9 * k, py1 - 6), 2, led, -1)
    # rack identification label
    _label(img, rng, border + 6, border + 22, name.upper().replace("_", " "), 0.55)
    for _ in range(int(rng.integers(1, 4))):
        _cable(img, rng)
    # a handrail along the long axis on some bays
    if rng.random() < 0.6:
        if long_is_y:
            x = int(rng.uniform(0.15, 0.85) * w)
            _handrail(img, (x, int(0.2 * h)), (x, int(0.8 * h)), 5)
        else:
            y = int(rng.uniform(0.15, 0.85) * h)
            _handrail(img, (int(0.2 * w), y), (int(0.8 * w), y), 5)
    return _grain(img, rng, 5.0)


def bulkhead(
    name: str, width_m: float, height_m: float, hatch_size_m: tuple[float, float] | None = None
) -> np.ndarray:
    """End wall or end-cone strip: stiffener ribs, bolts, optional central hatch with a
    handle and a window. hatch_size_m : (2,) m along the face-frame x and y axes."""
    rng = _rng("bulkhead:" + name)
    w, h = _px(width_m), _px(height_m)
    base = (190, 192, 196)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = base
    step = _px(0.25)
    for x in range(step // 2, w, step):
        cv2.line(img, (x, 0), (x, h - 1), _shade(base, 0.82), 3)
    for y in range(step // 2, h, step):
        cv2.line(img, (0, y), (w - 1, y), _shade(base, 0.88), 2)
        for x in range(step // 2, w, step):
            _bolt(img, x, y, 3)
    for _ in range(int(rng.integers(1, 3))):
        _cable(img, rng)
    if hatch_size_m is not None:
        hw, hh = _px(hatch_size_m[0]), _px(hatch_size_m[1])
        x0, y0 = (w - hw) // 2, (h - hh) // 2
        cv2.rectangle(img, (x0 - 8, y0 - 8), (x0 + hw + 8, y0 + hh + 8), (120, 122, 126), -1)
        cv2.rectangle(img, (x0, y0), (x0 + hw, y0 + hh), (214, 214, 206), -1)
        cv2.rectangle(img, (x0, y0), (x0 + hw, y0 + hh), (80, 80, 80), 3)
        cx, cy = w // 2, h // 2
        cv2.circle(img, (cx, cy - hh // 5), max(8, hw // 8), (60, 80, 100), -1, cv2.LINE_AA)
        cv2.circle(img, (cx, cy - hh // 5), max(8, hw // 8), (30, 30, 30), 3, cv2.LINE_AA)
        cv2.rectangle(img, (cx - hw // 5, cy + hh // 6), (cx + hw // 5, cy + hh // 6 + 10), (60, 60, 62), -1)
        _label(img, rng, x0 + 10, y0 + hh - 12, name.upper() + " HATCH", 0.5)
        for k in range(4):
            cv2.line(img, (x0 + 10 + 22 * k, y0 + 20), (x0 + 22 + 22 * k, y0 + 8), (30, 30, 30), 4)
    _label(img, rng, 12, 26, name.upper(), 0.5)
    return _grain(img, rng, 4.0)


def plain(name: str, width_m: float, height_m: float, colour: tuple[int, int, int]) -> np.ndarray:
    """Plain surface of one colour with seams, grain and a label (recess walls, bags)."""
    rng = _rng("plain:" + name)
    w, h = _px(width_m), _px(height_m)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = colour
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), _shade(colour, 0.6), 3)
    for _ in range(int(rng.integers(2, 5))):
        y = int(rng.uniform(0.1, 0.9) * h)
        cv2.line(img, (0, y), (w - 1, y + int(rng.integers(-8, 9))), _shade(colour, 0.8), 2)
    _label(img, rng, 10, h // 2, name.upper().replace("_", " "), 0.45)
    return _grain(img, rng, 6.0)


def marker(dictionary: str, marker_id: int, cells_px: int = 16, quiet_cells: int = 1) -> np.ndarray:
    """ArUco marker image with a white quiet zone, RGB uint8.

    The black square spans (bits + 2) cells; the image is (bits + 2 + 2 * quiet_cells) cells
    wide. The marker's top edge is row 0 (marker-frame +y), its left edge column 0.
    """
    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary))
    cells = d.markerSize + 2
    img = cv2.aruco.generateImageMarker(d, int(marker_id), cells * cells_px)
    img = cv2.copyMakeBorder(img, *([quiet_cells * cells_px] * 4), cv2.BORDER_CONSTANT, value=255)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)

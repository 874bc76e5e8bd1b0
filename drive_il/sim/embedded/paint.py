"""Painting a town's :class:`~drive_il.maps.geometry.MapGeometry` into the raster image.

:func:`render` fills lane surfaces (non-driving surfaces, junction aprons and hulls,
driving lanes on top) into a class layer and an RGB image, adds a deterministic texture
(grain and two low-frequency tint fields per :class:`~drive_il.maps.geometry.LaneClass`),
paints curbs and lane marks of their real width (broken lines in
:data:`~drive_il.maps.geometry.DASH_LENGTH` / :data:`~drive_il.maps.geometry.DASH_GAP`
dashes phased from the lane section's start; double lines as two lines of the mark's
width separated by one line width), and builds the mipmap pyramid. The pixel frame is
documented in :mod:`drive_il.sim.embedded.raster`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ...maps.geometry import DASH_GAP, DASH_LENGTH, LaneClass, MapGeometry, MarkingStrip
from .appearance import DEFAULT_GROUND, Appearance

__all__ = ["BASE_COLOURS", "render"]

# Base colours (RGB) per class, grain amplitude and low-frequency tints.
# (the default look's: terrain grass, asphalt, shoulder / gutter, sidewalk concrete,
# parking, border concrete, median grass, biking red asphalt, other;
# :data:`drive_il.sim.embedded.appearance.DEFAULT_GROUND`)
BASE_COLOURS = np.array(DEFAULT_GROUND, dtype=np.float32)
_GRAIN = np.array([14, 9, 9, 7, 9, 8, 14, 8, 9], dtype=np.float32)
# Two low-frequency noise fields A (~1.5 m) and B (~6 m): per-class RGB tint vectors.
_TINT_A = np.array([
    (9, 10, 5), (5, 5, 5), (5, 5, 5), (6, 6, 6), (5, 5, 5), (6, 6, 6), (9, 10, 5), (5, 5, 5), (5, 5, 5),
], dtype=np.float32)
_TINT_B = np.array([
    (18, 4, -2), (6, 6, 6), (6, 6, 6), (8, 8, 8), (6, 6, 6), (8, 8, 8), (16, 4, -2), (6, 6, 6), (6, 6, 6),
], dtype=np.float32)

_PAINT = {"White": (228, 228, 222), "Yellow": (222, 178, 48), "Blue": (40, 80, 190),
          "Green": (60, 160, 70), "Red": (190, 50, 40), "Other": (228, 228, 222),
          "Standard": (228, 228, 222)}
_CURB = (176, 175, 170)
_CURB_SHADOW = (60, 60, 62)
_GRASS_MARK = (92, 112, 58)

#: Which marking types are made of which lines ("S" solid, "B" broken), inside first.
_LINES = {
    "Solid": "S", "Broken": "B", "SolidSolid": "SS", "SolidBroken": "SB",
    "BrokenSolid": "BS", "BrokenBroken": "BB", "BottsDots": "D", "Other": "S",
}


_SHIFT = 4  # sub-pixel bits for cv2 drawing
#: Rows of the texture's per-pixel arithmetic at a time (its float planes stay in cache).
_TEXTURE_BLOCK = 16


def _to_px(pts: np.ndarray, x0: float, y0: float, res: float) -> np.ndarray:
    p = np.empty(pts.shape, dtype=np.float64)
    p[..., 0] = (pts[..., 0] - x0) / res
    p[..., 1] = (pts[..., 1] - y0) / res
    return np.rint(p * (1 << _SHIFT)).astype(np.int32)


def render(geom: MapGeometry, area: tuple[float, float, float, float], res: float, *, seed: int,
           appearance: Appearance | None = None
           ) -> tuple[list[np.ndarray], float, float, tuple[int, int, int, int]]:
    """Paint ``geom`` over ``area`` (xmin, ymin, xmax, ymax) [m] at ``res`` [m/px].

    Args:
        geom: the town's lane polygons.
        area: the world rectangle to cover [m].
        res: level-0 resolution [m/px].
        seed: texture seed (the same seed gives identical pixels).
        appearance: the look (ground colours, grain and tint amplitudes, asphalt
            patches, paint opacity and wear); None or the default: the default look.

    Returns:
        (levels, x0, y0, border): the pyramid (level 0: (H, W, 4) uint8 RGB + LaneClass;
        read-only arrays), the world position [m] of pixel (0, 0)'s centre, and the RGBX
        value of plain terrain.

    Raises:
        ValueError: the raster would exceed 400 Mpx.
    """
    ax0, ay0, ax1, ay1 = area
    x0 = math.floor(ax0 / res) * res
    y0 = math.floor(ay0 / res) * res
    W = math.ceil((ax1 - x0) / res) + 1
    H = math.ceil((ay1 - y0) / res) + 1
    if W * H > 400_000_000:
        raise ValueError(f"raster of {W}x{H} px is too large; choose a coarser resolution")
    look = None if appearance is None or appearance.is_default else appearance
    colours = BASE_COLOURS if look is None else np.array(look.ground, dtype=np.float32)
    img = np.empty((H, W, 4), dtype=np.uint8)
    # plain terrain everywhere: one 32-bit word per pixel (a tuple broadcast over four
    # uint8 channels costs seconds on an 80 Mpx raster)
    img.view(np.uint32).fill(np.frombuffer(bytes((*[int(v) for v in colours[0]], 0)), np.uint32)[0])
    cls = np.zeros((H, W), dtype=np.uint8)
    aa = cv2.LINE_AA

    def visible(q: np.ndarray) -> np.ndarray:
        mn = q.min(axis=1)
        mx = q.max(axis=1)
        return (mx[:, 0] >= x0 - 1) & (mn[:, 0] <= x0 + W * res + 1) & (mx[:, 1] >= y0 - 1) & (mn[:, 1] <= y0 + H * res + 1)

    def fill(poly_px: np.ndarray, c: int, *, with_colour: bool = True) -> None:
        cv2.fillConvexPoly(cls, poly_px, int(c), cv2.LINE_8, _SHIFT)
        if with_colour:
            col = tuple(int(v) for v in colours[c]) + (0,)
            cv2.fillConvexPoly(img, poly_px, col, aa, _SHIFT)

    vis = visible(geom.quads)
    Q = _to_px(geom.quads[vis], x0, y0, res)
    C = geom.quad_class[vis]
    # 1. non-driving surfaces, 2. junction surfaces, 3. driving lanes on top
    for apron in geom.junction_aprons:
        fill(_to_px(apron, x0, y0, res), LaneClass.SIDEWALK)
    order = np.argsort(C == LaneClass.DRIVING, kind="stable")
    nd = [i for i in order if C[i] != LaneClass.DRIVING]
    for i in nd:
        fill(Q[i], int(C[i]))
    for hull in geom.junction_hulls:
        hp = _to_px(hull, x0, y0, res)
        fill(hp, LaneClass.DRIVING)
    for i in np.nonzero(C == LaneClass.DRIVING)[0]:
        fill(Q[i], LaneClass.DRIVING)

    # 4. texture: grain + two low-frequency fields, per class, in row strips
    if look is None:
        _texture(img, cls, res, seed)
    else:
        _texture(img, cls, res, seed, colours=colours, grain=look.grain, tint=look.tint)
        if look.patches > 0.0:
            _patches(img, cls, x0, y0, res, look, seed)
    # 5. curbs and paint on top (flat paint: its anti-aliased edges then blend with the
    #    textured ground, which keeps the painted widths true), then the classes
    wear = None if look is None else _Wear(look, W, H, x0, y0, res, seed)
    for m in geom.markings:
        _draw_marking(img, m, x0, y0, res, wear=wear, colours=colours)
    img[..., 3] = cls
    border = (*[int(v) for v in colours[0]], 0)
    levels = [img]
    while min(levels[-1].shape[:2]) > 48 and len(levels) < 9:
        levels.append(cv2.pyrDown(levels[-1], borderType=cv2.BORDER_REPLICATE))
    for lv in levels:
        lv.setflags(write=False)
    return levels, x0, y0, border


def _strip_quads(xy: np.ndarray, nrm: np.ndarray, off: float, half: float) -> np.ndarray:
    """Quads (N-1, 4, 2) of a strip of half width ``half`` centred ``off`` along ``nrm``."""
    a = xy + nrm * (off - half)
    b = xy + nrm * (off + half)
    return np.stack([a[:-1], b[:-1], b[1:], a[1:]], axis=1)


def _resample(xy: np.ndarray, nrm: np.ndarray, s: np.ndarray, s_new: np.ndarray):
    order = np.argsort(s) if s[-1] < s[0] else slice(None)
    ss, xx, nn = s[order], xy[order], nrm[order]
    p = np.stack([np.interp(s_new, ss, xx[:, 0]), np.interp(s_new, ss, xx[:, 1])], axis=1)
    n = np.stack([np.interp(s_new, ss, nn[:, 0]), np.interp(s_new, ss, nn[:, 1])], axis=1)
    n /= np.maximum(np.hypot(n[:, 0], n[:, 1]), 1e-9)[:, None]
    return p, n


def _paint_strip(img: np.ndarray, pts: np.ndarray, half: float, colour, *, cap_start: bool,
                 cap_end: bool, wear: _Wear | None = None, windowed: bool = True) -> None:
    """Paint a strip of half width ``half`` [px] along the polyline ``pts`` (N, 2) [px]
    with exact-width anti-aliasing.

    Coverage of a pixel is the product of a lateral and a longitudinal linear ramp one
    pixel wide centred on the strip's edges (the box-filter coverage of a straight
    edge), so the painted full width at half maximum is exactly ``2 * half`` and a
    capped end lies exactly at its end point. Segments are combined with ``max`` (no
    double painting at joints); interior joints are extended to close curves.
    ``cv2.fillConvexPoly`` is not used for paint: its inclusive rasterisation plus the
    LINE_AA fringe widens a strip by about 1.4 px.

    ``windowed`` (default): each segment's coverage is evaluated on the pixels it can
    reach only; False evaluates it on the whole strip's box (the same pixels, slower: the
    tests' reference).
    """
    H, W = img.shape[:2]
    ext = half + 1.5
    lo = np.floor(pts.min(axis=0) - ext).astype(int)
    hi = np.ceil(pts.max(axis=0) + ext).astype(int)
    c0, r0 = max(lo[0], 0), max(lo[1], 0)
    c1, r1 = min(hi[0], W - 1), min(hi[1], H - 1)
    if c1 < c0 or r1 < r0:
        return
    cc = np.arange(c0, c1 + 1, dtype=np.float32)[None, :]
    rr = np.arange(r0, r1 + 1, dtype=np.float32)[:, None]
    alpha = np.zeros((r1 - r0 + 1, c1 - c0 + 1), np.float32)
    n = len(pts)
    # a segment's coverage is zero beyond ext + 0.5 px of its end points along it and
    # beyond half + 0.5 px across it: it is evaluated on the bounding box of that
    # rectangle (+ 1 px) only; the pixels and the arithmetic per pixel are the same as
    # over the whole strip's box
    along, across = ext + 0.5, half + 0.5
    for i in range(n - 1):
        ax, ay = pts[i]
        bx, by = pts[i + 1, 0], pts[i + 1, 1]
        dx, dy = bx - ax, by - ay
        L = math.hypot(dx, dy)
        if L < 1e-6:
            continue
        ux, uy = dx / L, dy / L
        if windowed:
            mx = along * abs(ux) + across * abs(uy) + 1.0
            my = along * abs(uy) + across * abs(ux) + 1.0
            j0 = max(math.floor(min(ax, bx) - mx) - c0, 0)
            j1 = min(math.ceil(max(ax, bx) + mx) - c0 + 1, c1 - c0 + 1)
            i0 = max(math.floor(min(ay, by) - my) - r0, 0)
            i1 = min(math.ceil(max(ay, by) + my) - r0 + 1, r1 - r0 + 1)
            if j1 <= j0 or i1 <= i0:
                continue
        else:
            j0, j1, i0, i1 = 0, c1 - c0 + 1, 0, r1 - r0 + 1
        px = cc[:, j0:j1] - ax
        py = rr[i0:i1] - ay
        t = px * ux + py * uy
        d = np.abs(py * ux - px * uy)
        cov = np.clip(half + 0.5 - d, 0.0, 1.0)
        t_lo = 0.0 if (i == 0 and cap_start) else -ext
        t_hi = L if (i == n - 2 and cap_end) else L + ext
        cov *= np.clip(np.minimum(t - t_lo, t_hi - t) + 0.5, 0.0, 1.0)
        sub = alpha[i0:i1, j0:j1]
        np.maximum(sub, cov, out=sub)
    if not alpha.any():
        return
    if wear is not None:
        alpha *= wear.factor(r0, r1 + 1, c0, c1 + 1)
    patch = img[r0:r1 + 1, c0:c1 + 1, :3].astype(np.float32)
    a3 = alpha[..., None]
    patch += (np.asarray(colour, np.float32)[None, None, :] - patch) * a3
    img[r0:r1 + 1, c0:c1 + 1, :3] = np.rint(patch).astype(np.uint8)


def _draw_line(img, xy, nrm, s, s0, off, width, colour, pattern, x0, y0, res, *, wear=None,
               colours=BASE_COLOURS) -> None:
    half = 0.5 * width / res
    if half < 0.5:
        # thinner than a pixel: keep the painted amount (width x contrast) by fading the
        # paint towards the asphalt on a one-pixel-wide line
        t = 2.0 * half
        colour = [b + (c - b) * t for c, b in zip(colour, colours[LaneClass.DRIVING])]
        half = 0.5

    def to_px(p: np.ndarray) -> np.ndarray:
        return np.stack([(p[:, 0] - x0) / res, (p[:, 1] - y0) / res], axis=1)

    centre = xy + nrm * off
    if pattern == "S":
        # chunks of <= 16 samples, joined without caps
        n = len(centre)
        for k in range(0, n - 1, 15):
            seg = centre[k:min(k + 16, n)]
            if len(seg) >= 2:
                _paint_strip(img, to_px(seg), half, colour, cap_start=k == 0, cap_end=k + 16 >= n, wear=wear)
        return
    if pattern == "B":
        dash, gap = DASH_LENGTH, DASH_GAP
    else:  # "D": Botts' dots, ~0.1 m every 1.2 m (approximated as short square dashes)
        dash, gap = max(width, 0.1), 1.2
    sx = s if s[-1] >= s[0] else s[::-1]
    keep_off = (half + 2.0) * res  # interior joints extend this far: keep them off the caps
    for lo, hi in _dash_intervals(sx, s0, dash, gap):
        inner = sx[(sx > lo + keep_off) & (sx < hi - keep_off)]
        s_new = np.concatenate([[lo], inner, [hi]])
        p, nn = _resample(xy, nrm, s, s_new)
        c = p + nn * off
        # a dash cut by the end of the strip continues on the next strip: no cap there
        _paint_strip(img, to_px(c), half, colour, cap_start=lo > sx[0] + 1e-6 or _dash_starts_at(lo, s0, dash + gap),
                     cap_end=hi < sx[-1] - 1e-6 or _dash_ends_at(hi, s0, dash, dash + gap), wear=wear)


def _dash_starts_at(x: float, s0: float, P: float, tol: float = 0.01) -> bool:
    r = (x - s0) % P
    return r < tol or P - r < tol


def _dash_ends_at(x: float, s0: float, dash: float, P: float, tol: float = 0.01) -> bool:
    r = (x - s0) % P
    return abs(r - dash) < tol


def _dash_intervals(s: np.ndarray, s0: float, dash: float, gap: float) -> list[tuple[float, float]]:
    P = dash + gap
    out = []
    k0 = math.floor((s[0] - s0) / P)
    k1 = math.floor((s[-1] - s0) / P)
    for k in range(k0, k1 + 1):
        a = s0 + k * P
        lo, hi = max(a, s[0]), min(a + dash, s[-1])
        if hi - lo > 1e-6:
            out.append((lo, hi))
    return out


def _draw_marking(img: np.ndarray, m: MarkingStrip, x0: float, y0: float, res: float, *,
                  wear: _Wear | None = None, colours: np.ndarray = BASE_COLOURS) -> None:
    if len(m.xy) < 2:
        return
    if m.kind == "Curb":
        # a raised kerb stone, lighter, with a thin shadow line on the road side
        _draw_line(img, m.xy, m.right, m.s, m.s0, 0.0, m.width, _CURB, "S", x0, y0, res, colours=colours)
        _draw_line(img, m.xy, m.right, m.s, m.s0, -0.5 * m.width - 0.03, 0.06, _CURB_SHADOW, "S", x0, y0, res,
                   colours=colours)
        return
    if m.kind == "Grass":
        grass = _GRASS_MARK if colours is BASE_COLOURS else tuple(float(v) for v in colours[LaneClass.TERRAIN])
        _draw_line(img, m.xy, m.right, m.s, m.s0, 0.0, max(m.width, 0.3), grass, "S", x0, y0, res)
        return
    pattern = _LINES.get(m.kind)
    if pattern is None:
        return
    colour = _PAINT.get(m.color, _PAINT["White"])
    w = m.width
    kw = {} if wear is None else {"wear": wear, "colours": colours}
    if len(pattern) == 1:
        _draw_line(img, m.xy, m.right, m.s, m.s0, 0.0, w, colour, pattern, x0, y0, res, **kw)
    else:
        # two lines of width w, gap w, inside (negative side of ``right``) first
        _draw_line(img, m.xy, m.right, m.s, m.s0, -w, w, colour, pattern[0], x0, y0, res, **kw)
        _draw_line(img, m.xy, m.right, m.s, m.s0, +w, w, colour, pattern[1], x0, y0, res, **kw)


def _texture(img: np.ndarray, cls: np.ndarray, res: float, seed: int, *, colours: np.ndarray | None = None,
             grain: float = 1.0, tint: float = 1.0) -> None:
    """Add deterministic texture in place: grain + two low-frequency tint fields per class.

    The noise comes from one ``numpy.random.Generator`` seeded from the map digest and is
    drawn in fixed row strips, so the same map gives the same texture bit for bit.
    """
    H, W = cls.shape
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    # low-frequency fields on coarse grids (cells of ~1.5 m and ~6 m), bilinear-upsampled
    grids = []
    for cell in (1.5, 6.0):
        gh = math.ceil(H * res / cell) + 4
        gw = math.ceil(W * res / cell) + 4
        g = rng.standard_normal((gh, gw)).astype(np.float32)
        g = cv2.GaussianBlur(g, (0, 0), 0.7)
        g /= max(float(g.std()), 1e-6)
        grids.append((cell, g))
    def lut(v: np.ndarray) -> np.ndarray:
        t = np.zeros(256, np.float32)
        t[:len(v)] = v
        return t

    if colours is None:  # the default look
        grain_lut = lut(_GRAIN / 128.0)
        ta = [lut(_TINT_A[:, ch]) for ch in range(3)]
        tb = [lut(_TINT_B[:, ch]) for ch in range(3)]
    else:
        # grass tints follow the terrain's colour (its green/yellow balance)
        tA, tB = _TINT_A.copy() * tint, _TINT_B.copy() * tint
        grey = np.abs(colours - colours.mean(axis=1, keepdims=True)).max(axis=1) < 12.0
        tA[grey] = tA[grey].mean(axis=1, keepdims=True)
        tB[grey] = tB[grey].mean(axis=1, keepdims=True)
        grain_lut = lut(_GRAIN * grain / 128.0)
        ta = [lut(tA[:, ch]) for ch in range(3)]
        tb = [lut(tB[:, ch]) for ch in range(3)]
    strip = 256
    for r0 in range(0, H, strip):
        r1 = min(H, r0 + strip)
        n = r1 - r0
        c = cls[r0:r1]
        raw = np.frombuffer(rng.bytes(n * W), dtype=np.uint8).reshape(n, W)
        grain = raw.astype(np.float32)
        grain -= 128.0
        grain *= cv2.LUT(c, grain_lut)
        fields = []
        for cell, g in grids:
            k = res / cell
            M = np.array([[k, 0, 2.0], [0, k, 2.0 + r0 * k]], dtype=np.float64)
            fields.append(cv2.warpAffine(g, M, (W, n), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                         borderMode=cv2.BORDER_REFLECT))
        # the per-pixel arithmetic in blocks of rows that stay in the CPU cache (the
        # noise and the fields are drawn per strip as before: the same pixels)
        for b0 in range(0, n, _TEXTURE_BLOCK):
            b1 = min(n, b0 + _TEXTURE_BLOCK)
            cb, f0, f1, gb = c[b0:b1], fields[0][b0:b1], fields[1][b0:b1], grain[b0:b1]
            planes = list(cv2.split(img[r0 + b0:r0 + b1]))
            for ch in range(3):
                d = cv2.multiply(f0, cv2.LUT(cb, ta[ch]))
                d = cv2.add(d, cv2.multiply(f1, cv2.LUT(cb, tb[ch])))
                d = cv2.add(d, gb)
                planes[ch] = cv2.add(planes[ch], d, dtype=cv2.CV_8U)
            img[r0 + b0:r0 + b1] = cv2.merge(planes)


_ROAD_LUT = np.zeros(256, np.uint8)
for _k in (LaneClass.DRIVING, LaneClass.SHOULDER, LaneClass.PARKING):
    _ROAD_LUT[int(_k)] = 1


def _patches(img: np.ndarray, cls: np.ndarray, x0: float, y0: float, res: float, look: Appearance,
             seed: int) -> None:
    """Asphalt repair patches (darker or lighter rotated rectangles with their own
    grain) and cracks (thin dark polylines) on road surfaces, in place; seeded."""
    H, W = cls.shape
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11, int(look.seed or 0) & 0xFFFFFFFF]))
    road = cv2.LUT(cls, _ROAD_LUT)
    area = float(np.count_nonzero(road)) * res * res
    n = int(min(look.patches * area / 100.0, 20_000))
    if n <= 0:
        return
    # patch centres: uniform over the raster, kept on road surfaces (no index arrays of
    # every road pixel: rasters reach 80 Mpx)
    frac = max(float(np.count_nonzero(road)) / road.size, 1e-6)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    got = 0
    for _ in range(64):
        m = int(min(max(2.0 * (n - got) / frac, 64), 4_000_000))
        r_ = rng.integers(0, H, m)
        c_ = rng.integers(0, W, m)
        on = road[r_, c_] > 0
        rows.append(r_[on])
        cols.append(c_[on])
        got += int(on.sum())
        if got >= n:
            break
    rr = np.concatenate(rows)[:n]
    cc = np.concatenate(cols)[:n]
    for i in range(len(rr)):
        r, c = int(rr[i]), int(cc[i])
        crack = rng.random() < 0.35
        yaw = rng.uniform(0.0, math.pi)
        if crack:
            k = int(rng.integers(3, 8))
            step = rng.uniform(0.3, 0.9) / res
            ang = yaw + np.cumsum(rng.normal(0.0, 0.6, k))
            px = c + np.concatenate([[0.0], np.cumsum(np.cos(ang) * step)])
            py = r + np.concatenate([[0.0], np.cumsum(np.sin(ang) * step)])
            pts = np.stack([px, py], axis=1)
        else:
            a = rng.uniform(0.4, 3.0) / res
            b = rng.uniform(0.3, 1.5) / res
            ca, sa = math.cos(yaw), math.sin(yaw)
            pts = np.array([(c + f * ca - g * sa, r + f * sa + g * ca) for f, g in ((a, -b), (a, b), (-a, b), (-a, -b))])
        lo = np.floor(pts.min(axis=0)).astype(int) - 2
        hi = np.ceil(pts.max(axis=0)).astype(int) + 3
        c0, r0 = max(lo[0], 0), max(lo[1], 0)
        c1, r1 = min(hi[0], W), min(hi[1], H)
        if c1 <= c0 or r1 <= r0:
            continue
        mask = np.zeros((r1 - r0, c1 - c0), np.uint8)
        p = np.rint((pts - (c0, r0)) * (1 << _SHIFT)).astype(np.int32)
        if crack:
            cv2.polylines(mask, [p], False, 255, max(1, round(0.02 / res)), cv2.LINE_AA, _SHIFT)
            delta = -rng.uniform(0.8, 1.6) * look.patch_shade
        else:
            cv2.fillConvexPoly(mask, p, 255, cv2.LINE_AA, _SHIFT)
            delta = rng.uniform(-1.0, 1.0) * look.patch_shade
        a = mask.astype(np.float32) * (1.0 / 255.0)
        a *= road[r0:r1, c0:c1]
        roi = img[r0:r1, c0:c1, :3].astype(np.float32)
        roi += (a * delta)[..., None]
        img[r0:r1, c0:c1, :3] = np.clip(np.rint(roi), 0, 255).astype(np.uint8)


class _Wear:
    """Lane-paint wear: per-pixel paint opacity in [0, 1] from two seeded noise fields
    (~0.25 m: broken, crumbly paint; ~3 m: faded stretches), static in the world."""

    def __init__(self, look: Appearance, W: int, H: int, x0: float, y0: float, res: float, seed: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 13, int(look.seed or 0) & 0xFFFFFFFF]))
        self.res = res
        self.grids = []
        for cell in (0.25, 3.0):
            while (H * res / cell) * (W * res / cell) > 16_000_000:
                cell *= 1.25  # very large towns: coarser wear (bounded memory)
            gh = math.ceil(H * res / cell) + 4
            gw = math.ceil(W * res / cell) + 4
            g = rng.standard_normal((gh, gw)).astype(np.float32)
            g = cv2.GaussianBlur(g, (0, 0), 0.8)
            g /= max(float(g.std()), 1e-6)
            self.grids.append((cell, g))
        self.opacity = float(look.paint_opacity)
        self.wear = float(look.paint_wear)

    def factor(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """(r1 - r0, c1 - c0) float32 opacity of the paint over that pixel block."""
        fields = []
        for cell, g in self.grids:
            k = self.res / cell
            M = np.array([[k, 0, 2.0 + c0 * k], [0, k, 2.0 + r0 * k]], dtype=np.float64)
            fields.append(cv2.warpAffine(g, M, (c1 - c0, r1 - r0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                         borderMode=cv2.BORDER_REFLECT))
        t = 0.8 * fields[0] + 0.6 * fields[1]
        # wear 0: (almost) intact; wear 1: most of it gone
        f = np.clip((t + 1.6 - 3.2 * self.wear) * 1.5, 0.0, 1.0)
        f *= self.opacity * (0.85 + 0.15 * np.clip(fields[1] * 0.5 + 0.5, 0.0, 1.0))
        return f.astype(np.float32)

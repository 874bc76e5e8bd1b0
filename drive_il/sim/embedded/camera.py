"""The embedded world's RGB camera: a pinhole camera over the map raster.

Camera model: :class:`drive_il.camera.PinholeCamera` (CARLA's ``sensor.camera.rgb``):
horizontal field of view ``fov``, focal length ``f = W / (2 tan(fov / 2))`` [px],
principal point at the image centre, no distortion. In camera coordinates (CARLA/UE:
x forward, y right, z up) a point maps to

    u = W/2 + f * y / x,      v = H/2 - f * z / x

in continuous image coordinates where pixel (i, j) covers [i, i+1) x [j, j+1) (the
intrinsic matrix of CARLA's examples, ``K[0, 2] = W / 2``); the *centre* of pixel
index ``i`` is therefore at ``u = i + 0.5``. The camera is mounted at (x, y, z) [m] and
(pitch, yaw) relative to the vehicle's reference point (the bounding-box centre at
ground), pitch + = up, yaw + = right, no roll (:class:`drive_il.scenario.CameraConfig`).

Rendering, per frame, for a flat ground plane z = 0:

1. *Ground*: the image rows below the horizon are a homography of the top-down
   :class:`~drive_il.sim.embedded.raster.MapRaster`; each band of rows is filled by one
   ``cv2.warpPerspective`` (``WARP_INVERSE_MAP``, bilinear) from the pyramid level that
   matches the ground footprint of its pixels (the geometric mean of the along- and
   across-track footprints), so far markings and asphalt grain are pre-filtered instead
   of aliased (no shimmer for a CNN to latch onto).
2. *Grading, haze and sky* in two whole-image operations with per-spec precomputed
   images: ``out = ground * G + O`` where ``G`` = gain x (1 - haze(row)) (0 above the
   horizon) and ``O`` = bias x (1 - haze) + haze colour x haze, or the sky gradient
   above the horizon. Haze follows Koschmieder's law along each row's ground distance.
3. *Vehicles*: shaded 3D boxes (a dark ground shadow that shows under the body where
   the wheels are, the body, a glass cabin with a roof in the body colour; sun-shaded
   per face, graded and hazed like the ground) projected with the pinhole model,
   clipped against the near plane, back faces culled, painted far to near with
   ``cv2.fillConvexPoly`` (anti-aliased). Vehicles under 12 px tall are drawn as
   three silhouettes (shadow, body, cabin). Vehicles out of view cost one cheap test each.
   With a seeded look (:class:`~drive_il.sim.embedded.appearance.Appearance`), the
   town's roadside objects (:class:`~drive_il.sim.embedded.appearance.Scenery`:
   buildings, tree trunks and canopies, poles, fence panels; static, placed once per
   town) are painted together with the vehicles in one far-to-near order (footprint
   distance): culled by range and against the horizontal field of view (bounding
   spheres; the candidates near the camera are cached and refreshed every 20 m), all
   corners projected in one product, buildings face by face (sun-shaded, only the
   faces that look at the camera; one silhouette when under 24 px tall), thin boxes
   and canopies (tapered hexagonal prisms) as the convex hull of their corners;
   graded and hazed like the vehicles. Objects crossing the near plane are clipped
   (faces, or the hull of the corners in front and the edges' crossings).
   *Traffic lights and walkers* (issue 19; ``render(..., lights=, walkers=)``): each
   light's stop line is painted first, on the ground under everything (a white band
   :data:`STOP_LINE_WIDTH` wide across ``TrafficLight.stop_line``, graded and hazed as
   the ground); then lights (a dark grey pole, a housing at ``height`` on the side of
   the oncoming traffic, three lamps -- red top, yellow, green -- facing against the
   light's ``yaw``, seen only from that side; the lit lamp in its full colour, not
   graded by the look (emissive: as bright at sunset and in rain), at least
   ``_LIT_MIN_PX`` px in radius so a distant red stays visible in a 66x200 frame;
   unlit lamps dark) and walkers (two legs, a torso in ``WalkerState.color``, a
   skin-toned head: boxes scaled to ``height``; two silhouettes under 12 px tall, one
   under 5 px) go
   into the same far-to-near order as the vehicles and roadside objects, so they
   occlude and are occluded correctly. Culled by range (:data:`LIGHT_DRAW`,
   :data:`WALKER_DRAW`) and the horizontal field of view; all walkers (lights) in view
   are projected in one product. They stand on the flat ground (their ``z`` is not
   used, as the vehicles'). With none, the frame is that of a render without them,
   bit for bit.
4. *Rain*: one of a bank of precomputed streak layers chosen by a hash of
   (seed, frame), added to the frame; deterministic.

Everything that depends only on the camera spec, the raster and the look is computed
in the constructor. The same inputs give bit-identical frames.

A second render mode, :meth:`Camera.render_depth_labels`
(:mod:`drive_il.sim.embedded.depth_labels`), gives what CARLA's
``sensor.camera.depth`` and ``sensor.camera.semantic_segmentation`` see: per pixel the
depth [m] along the camera's forward axis (CARLA's depth is planar, not the distance
along the ray; capped at :data:`FAR_DEPTH`, the sky is at :data:`FAR_DEPTH`) and the
CARLA semantic tag (:data:`LANE_CLASS_TAGS` for the ground from the raster's lane
class, 24 road line where a road surface carries paint, 11 sky, 14 car or the tag
given per vehicle; roadside objects 3 building, 5 fence, 6 pole, 9 vegetation). It uses exact plane
intersections (flat ground z = 0, vehicles as their body and cabin boxes, body down
to the ground where the wheels are) and no anti-aliasing; it shares nothing mutable
with the RGB path, which it leaves untouched. With ``lights`` / ``walkers`` the lights'
poles and housings are tagged 7 TrafficLight, walkers 12 Pedestrians and the stop lines
24 RoadLines where the ground is seen (:meth:`Camera.render_depth_labels`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import cv2
import numpy as np

from ...camera import PinholeCamera
from ...scenario import CameraConfig
from ...types import (
    ActorState,
    TrafficLight,
    VehicleState,
    WalkerState,
)
from .appearance import (
    BOX_FACES6,
    BOX_SIDES,
    BOX_TOP,
    HEX_FACES,
    KIND_BOX,
    KIND_CANOPY,
    KIND_SOLID,
    Scenery,
)
from .depth_labels import TAG_ROADLINE, DepthLabelRendering
from .projection import BOX_FACES, MAX_DRAW, NEAR, ONE, SHIFT, clip_near
from .raster import MapRaster
from .weather import WeatherLook

__all__ = ["LIGHT_DRAW", "TAG_PEDESTRIAN", "TAG_TRAFFIC_LIGHT", "WALKER_DRAW", "Camera"]

#: CARLA 0.9.16 semantic tags (``carla::rpc::CityObjectLabel``,
#: ``LibCarla/source/carla/rpc/ObjectLabel.h``): TrafficLight = 7, Pedestrians = 12
#: (RoadLines = 24 for the stop line, :data:`~.depth_labels.TAG_ROADLINE`).
TAG_TRAFFIC_LIGHT, TAG_PEDESTRIAN = 7, 12
#: Traffic lights (and their stop lines) and walkers farther than this are not drawn [m].
LIGHT_DRAW = 120.0
WALKER_DRAW = 90.0

_RAIN_BANK = 16     # precomputed rain layers
_MIN_BAND = 3       # rows; thinner level bands are merged
_SIMPLE_PX = 12     # vehicles less tall than this [px] are drawn as three silhouettes (shadow, body, cabin)
_SMALL_FRAME = 40_000  # px; frames up to this size get the "small" LOD defaults
_SOLID_SIMPLE_PX = 24  # roadside solids (buildings) less tall than this [px]: one silhouette
_TINY_PX = 5          # walkers less tall than this [px]: one silhouette


class Camera(DepthLabelRendering):
    """A pinhole RGB camera rendering the embedded world.

    Args:
        spec: the camera (size, fov, mount pose) in CARLA's conventions.
        raster: the town's :class:`MapRaster`.
        look: the weather look (:meth:`WeatherLook.from_preset`).
        lod_aniso: how the pyramid level of a band follows the ground footprint of its
            pixels, which is anisotropic (long along the track, narrow across it): the
            level's texel is ``across^(1 - a) * (along / supersample)^a * 2^lod_bias``;
            a = 0 keeps lane lines as sharp as a real camera shows them but aliases
            along the track, 0.5 (geometric mean) blurs lines sideways. Defaults
            (measured against a supersampled reference on Town01, mean abs error /
            frame-to-frame flicker in grey levels): frames up to 40,000 px (66x200)
            a = 0.35, bias 0 (1.4 / 1.5 at 66x200; a = 0 without supersampling: 3.2 /
            2.8), where sub-pixel lines are blurred anyway; larger frames a = 0,
            bias 0.5 (0.83 / 1.0 at 800x600), which keeps 0.12 m lines within 10% of
            their width 18 m ahead.
        lod_bias: added to the level (+1 = blurrier, -1 = sharper, more aliasing).
        supersample: 1, 2 or 4 ground samples per pixel row, averaged (vertical
            anti-aliasing along the track; costs one more warp row per sample);
            default 2.
        scenery: roadside objects to draw (:class:`~.appearance.Scenery`, from the
            town's :class:`~.appearance.Appearance`); None or empty: none (the default
            look).

    Attributes:
        spec, raster, look: as given.
        model: the camera's :class:`~drive_il.camera.PinholeCamera`.
        horizon_v: image row (continuous, index convention) of the horizon.
        bands: ((row0, row1, level), ...) of the ground warp.
    """

    def __init__(self, spec: CameraConfig, raster: MapRaster, look: WeatherLook, *,
                 lod_aniso: float | None = None, lod_bias: float | None = None,
                 supersample: int | None = None, scenery: Scenery | None = None) -> None:
        small = spec.width * spec.height <= _SMALL_FRAME
        if lod_aniso is None:
            lod_aniso = 0.35 if small else 0.0
        if lod_bias is None:
            lod_bias = 0.0 if small else 0.5
        if not 0.0 <= lod_aniso <= 1.0:
            raise ValueError(f"lod_aniso must be in [0, 1], got {lod_aniso!r}")
        if supersample is None:
            supersample = 2
        if supersample not in (1, 2, 4):
            raise ValueError(f"supersample must be 1, 2 or 4, got {supersample!r}")
        self.supersample = int(supersample)
        self._lod_alpha = float(lod_aniso)
        self.spec = spec
        self.raster = raster
        self.look = look
        W, H = int(spec.width), int(spec.height)
        self._W, self._H = W, H
        model = PinholeCamera.from_config(spec)
        self.model = model
        f = model.focal
        self._f = f
        self._cxi = model.cx
        self._cyi = model.cy
        self._axes = model.axes
        # pixel index -> ray in the vehicle frame
        self._Q = model.pixel_to_vehicle
        self.horizon_v = model.horizon_row
        self._ground0 = int(min(max(math.floor(self.horizon_v) + 1, 0), H))
        self._dist = self._row_distances()
        self._H0 = model.ground_homography(0.0, 0.0, 0.0)
        self.bands = self._make_bands(lod_bias)
        ss = self.supersample
        nb = len(self.bands)
        QT = np.empty((nb, 3, 3))
        scale = np.ones((nb, 3, 1))
        for i, (r0, r1, lv) in enumerate(self.bands):
            # band row j (supersampled, from the first ground row) -> image row
            # v = ground0 + (r0 + j + 0.5) / ss - 0.5
            T = np.array([[1.0, 0.0, 0.0], [0.0, 1.0 / ss, self._ground0 + (r0 + 0.5) / ss - 0.5],
                          [0.0, 0.0, 1.0]])
            QT[i] = self._Q @ T
            scale[i, :2, 0] = 0.5 ** lv
        self._QT = QT
        self._lvscale = scale
        self._buf = np.zeros((H, W, 4), np.uint8)
        ng = H - self._ground0
        self._gbuf = self._buf[self._ground0:] if ss == 1 else np.zeros((ng * ss, W, 4), np.uint8)
        self._half = np.zeros((ng * 2, W, 4), np.uint8) if ss == 4 else None
        self._bufs = [self._gbuf[r0:r1] for (r0, r1, _) in self.bands]
        self._levels = [raster.levels[lv] for (_, _, lv) in self.bands]
        self._border = tuple(int(v) for v in raster.border_value)
        self._gain_img, self._off_img = self._grading_images()
        self._rain = self._rain_bank() if look.rain > 0.0 else None
        self._tan_half = math.tan(spec.fov / 2.0)
        sa = math.radians(look.sun_altitude)
        az = math.radians(look.sun_azimuth)
        self._sun = (math.cos(sa) * math.cos(az), math.cos(sa) * math.sin(az), math.sin(sa))
        sx, sy = self._sun[0], self._sun[1]
        # a vehicle's (front, rear, right, left) faces: sun . normal = c * sun_c + s * sun_s
        # for the yaw's (c, s)
        self._sun_c = np.array((sx, -sx, sy, -sy))
        self._sun_s = np.array((sy, -sy, -sx, sx))
        # grading of the vehicles, lights and walkers (:meth:`_graded`)
        self._gain = np.asarray(look.gain, np.float64)
        self._bias = np.asarray(look.bias, np.float64)
        self._haze = np.asarray(look.haze_colour, np.float64)
        sh = 0.5 * (1.0 + look.ambient)
        self._sil_shade = np.array((1.0, sh, sh))  # vehicle silhouettes: shadow, body, cabin
        # camera axes -> sub-pixel (cv2 shift) homogeneous pixels
        self._Kp = model.axes_to_pixel * np.array([[ONE], [ONE], [1.0]])
        G = 8 * max(W, H)  # guard band [px] around the image for clipped polygons
        self._guard_box = (-G, -G, W + G, H + G)
        self._guard_abs = G * ONE  # (lights, walkers: |u|, |v| within G px, in shift units)
        self.scenery = scenery if scenery is not None and len(scenery) else None
        if self.scenery is not None:
            self._scene_pre()

    # -- precomputation -----------------------------------------------------------------
    def _row_distances(self) -> np.ndarray:
        """Ground distance [m] from the camera of each row's centre pixel (inf above the horizon)."""
        H = self._H
        d = np.full(H, np.inf)
        fw, _rt, up = self._axes
        z = self.spec.z
        for v in range(self._ground0, H):
            b = -(v - self._cyi) / self._f
            dz = fw[2] + up[2] * b
            if dz >= -1e-9:
                continue
            dx = fw[0] + up[0] * b
            dy = fw[1] + up[1] * b
            t = -z / dz
            d[v] = t * math.sqrt(dx * dx + dy * dy + dz * dz)
        return d

    def _footprints(self, v: float) -> tuple[float, float]:
        """(along, across) ground footprint [m/px] of one pixel at image row v (centre column)."""
        Hm = self._H0

        def P(u, vv):
            p = Hm @ np.array([u, vv, 1.0])
            return p[:2] / p[2]

        along = float(np.linalg.norm(P(self._cxi, v + 0.5) - P(self._cxi, v - 0.5)))
        across = float(np.linalg.norm(P(self._cxi + 0.5, v) - P(self._cxi - 0.5, v)))
        return along, across

    def _make_bands(self, lod_bias: float) -> tuple[tuple[int, int, int], ...]:
        """((row0, row1, level), ...) over supersampled ground rows (0 = first ground row)."""
        H = self._H
        ss = self.supersample
        nlev = len(self.raster.levels)
        res = self.raster.res
        levels = []
        for j in range((H - self._ground0) * ss):
            v = self._ground0 + (j + 0.5) / ss - 0.5
            b = -(v - self._cyi) / self._f
            fw, _, up = self._axes
            if fw[2] + up[2] * b >= -1e-6:
                levels.append(nlev - 1)
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                along, across = self._footprints(v)
            if not (math.isfinite(along) and math.isfinite(across)) or along > 1e4:
                levels.append(nlev - 1)  # the footprint reaches the horizon
                continue
            a = self._lod_alpha
            g = max(across, 1e-12) ** (1.0 - a) * max(along / ss, 1e-12) ** a
            lv = math.floor(math.log2(max(g / res, 1e-9)) + lod_bias + 0.5)
            levels.append(min(max(lv, 0), nlev - 1))
        runs: list[list[int]] = []  # [row0, row1, level]
        for j, lv in enumerate(levels):
            if runs and runs[-1][2] == lv:
                runs[-1][1] = j + 1
            else:
                runs.append([j, j + 1, lv])
        # merge runs thinner than _MIN_BAND rows into their neighbours (each warp call
        # has a fixed cost); the merged level is the row-weighted mean, rounded
        merged: list[list[float]] = []
        for r0, r1, lv in runs:
            if merged and (r1 - r0 < _MIN_BAND * ss or merged[-1][1] - merged[-1][0] < _MIN_BAND * ss):
                m0, m1, ml = merged[-1]
                n0, n1 = m1 - m0, r1 - r0
                merged[-1] = [m0, r1, (ml * n0 + lv * n1) / (n0 + n1)]
            else:
                merged.append([r0, r1, float(lv)])
        return tuple((int(a), int(b), math.floor(lv + 0.5)) for a, b, lv in merged)

    def _grading_images(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel multiply (scale 1/128) and add images, (H, W, 3) uint8."""
        H, W = self._H, self._W
        L = self.look
        gain = np.zeros((H, 3), np.float64)
        off = np.zeros((H, 3), np.float64)
        for v in range(H):
            if v < self._ground0:
                # sky: gradient from the top of the view to the horizon
                t = 1.0 if not math.isfinite(self.horizon_v) else 1.0 - max(0.0, (self.horizon_v - v)) / max(self.horizon_v + 0.5, 1.0)
                t = max(0.0, min(1.0, t)) ** 2.2
                off[v, :3] = [a + (b - a) * t for a, b in zip(L.sky_top, L.sky_horizon)]
                continue
            d = self._dist[v]
            a = L.haze_alpha(d)
            # wet ground reflects the sky at grazing angles (Fresnel-like, grows with distance)
            sheen = L.wet_sheen(d)
            for c in range(3):
                g = L.gain[c] * (1.0 - sheen)
                bb = L.bias[c] * (1.0 - sheen) + sheen * L.sky_horizon[c]
                gain[v, c] = g * (1.0 - a)
                off[v, c] = bb * (1.0 - a) + L.haze_colour[c] * a
        g8 = np.clip(np.rint(gain * 128.0), 0, 255).astype(np.uint8)
        o8 = np.clip(np.rint(off), 0, 255).astype(np.uint8)
        G = np.ascontiguousarray(np.broadcast_to(g8[:, None, :], (H, W, 3)))
        O = np.ascontiguousarray(np.broadcast_to(o8[:, None, :], (H, W, 3)))
        return G, O

    def _rain_bank(self) -> list[np.ndarray]:
        """Precomputed additive rain-streak layers (H, W, 3) uint8.

        Streaks are thin slanted lines (motion-blurred drops) of random length and
        brightness, denser and brighter with the rain intensity; drawn in four
        brightness groups per layer (one ``cv2.polylines`` call each).
        """
        H, W = self._H, self._W
        r = self.look.rain
        rng = np.random.default_rng(np.random.SeedSequence([W, H, int(r * 1000), 1234]))
        n = round(r * 0.0025 * W * H) + 3
        scale = max(H / 600.0, 0.25)
        thick = max(1, round(1.0 * scale))
        bank = []
        for _ in range(_RAIN_BANK):
            layer = np.zeros((H, W, 3), np.uint8)
            xs = rng.uniform(0, W, n)
            ys = rng.uniform(-0.1 * H, H, n)
            ln = rng.uniform(0.03, 0.09, n) * H
            slant = 0.10 + 0.04 * rng.standard_normal(n)
            group = rng.integers(0, 4, n)
            p0 = np.stack([xs, ys], axis=1)
            p1 = np.stack([xs + slant * ln, ys + ln], axis=1)
            lines = np.rint(np.stack([p0, p1], axis=1) * ONE).astype(np.int32)
            for g in range(4):
                c = int((14 + 9 * g) * (0.6 + 0.4 * r))
                sel = lines[group == g]
                if len(sel):
                    cv2.polylines(layer, list(sel), False, (c, c, c), thick, cv2.LINE_AA, SHIFT)
            bank.append(layer)
        return bank

    # -- per frame ------------------------------------------------------------------------
    def _ground_to_raster(self, ego: VehicleState) -> tuple[np.ndarray, tuple[float, float, float],
                                                           tuple[float, float]]:
        """(A (3, 3): the camera's ground plane -> level-0 raster pixels, A = S @ G @ Rz;
        the camera's world position (x, y, z) [m]; (cos, sin) of the ego's yaw) for a
        camera on ``ego``. Shared by the RGB and the depth/label render."""
        r = self.raster
        c, s = math.cos(ego.yaw), math.sin(ego.yaw)
        sp = self.spec
        Cx = ego.x + sp.x * c - sp.y * s
        Cy = ego.y + sp.x * s + sp.y * c
        Cz = sp.z
        ir = 1.0 / r.res
        A = np.array((
            (-Cz * c * ir, Cz * s * ir, (Cx - r.x0) * ir),
            (-Cz * s * ir, -Cz * c * ir, (Cy - r.y0) * ir),
            (0.0, 0.0, 1.0),
        ))
        return A, (Cx, Cy, Cz), (c, s)

    def render(self, ego: VehicleState, actors: Sequence[ActorState] = (), *, frame: int = 0,
               seed: int = 0, lights: Sequence[TrafficLight] = (),
               walkers: Sequence[WalkerState] = ()) -> np.ndarray:
        """Render one frame.

        Args:
            ego: the vehicle carrying the camera (its reference point and yaw).
            actors: other vehicles (drawn where in view).
            frame: simulation frame number (rain animation).
            seed: episode seed (rain animation).
            lights: traffic lights (pole, housing, three lamps facing against the light's
                ``yaw``, the lit one emissive; the stop line painted on the ground), drawn
                within :data:`LIGHT_DRAW` [m].
            walkers: pedestrians (legs, torso in the walker's ``color``, head), drawn
                within :data:`WALKER_DRAW` [m].

        Lights and walkers stand on the flat ground (their ``z`` is not used, as the
        vehicles'). With none, the frame is exactly that of a render without them.

        Returns:
            (H, W, 3) uint8 RGB image (a new array).
        """
        A, _, _ = self._ground_to_raster(ego)
        Ms = np.matmul(A, self._QT)
        Ms *= self._lvscale
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        border = self._border
        for M, dst, lv in zip(Ms, self._bufs, self._levels):
            cv2.warpPerspective(lv, M, (dst.shape[1], dst.shape[0]), dst=dst, flags=flags,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=border)
        buf = self._buf
        if self._H == self._ground0:
            pass  # no ground in view
        elif self.supersample == 2:
            g = self._gbuf
            cv2.addWeighted(g[0::2], 0.5, g[1::2], 0.5, 0.0, dst=buf[self._ground0:])
        elif self.supersample == 4:
            g, h = self._gbuf, self._half
            cv2.addWeighted(g[0::2], 0.5, g[1::2], 0.5, 0.0, dst=h)
            cv2.addWeighted(h[0::2], 0.5, h[1::2], 0.5, 0.0, dst=buf[self._ground0:])
        out = cv2.cvtColor(buf, cv2.COLOR_RGBA2RGB)
        cv2.multiply(out, self._gain_img, dst=out, scale=1.0 / 128.0)
        cv2.add(out, self._off_img, dst=out)
        if lights or walkers:
            self._draw_urban(out, ego, actors, lights, walkers)
        elif self.scenery is not None:
            self._draw_scene(out, ego, actors)
        elif actors:
            self._draw_actors(out, ego, actors)
        if self._rain is not None:
            h = _mix64(seed, frame)
            cv2.add(out, self._rain[h % _RAIN_BANK], dst=out)
        return out

    # -- vehicles -----------------------------------------------------------------------------
    def _draw_actors(self, out: np.ndarray, ego: VehicleState, actors: Sequence[ActorState]) -> None:
        todo, Rw, C = self._actor_todo(ego, actors)
        if not todo:
            return
        self._draw_vehicles(out, todo, Rw, C)

    def _actor_todo(self, ego: VehicleState, actors: Sequence[ActorState]):
        """(vehicles in view as (distance, actor) far to near, camera axes in the world
        Rw (3, 3), camera position (x, y, z))."""
        sp = self.spec
        c, s = math.cos(ego.yaw), math.sin(ego.yaw)
        Cx = ego.x + sp.x * c - sp.y * s
        Cy = ego.y + sp.x * s + sp.y * c
        Cz = sp.z
        fw, rt, up = self._axes
        # camera axes in the world (rows): cam = Rw @ (P - C)
        Rw = ((fw[0] * c - fw[1] * s, fw[0] * s + fw[1] * c, fw[2]),
              (rt[0] * c - rt[1] * s, rt[0] * s + rt[1] * c, rt[2]),
              (up[0] * c - up[1] * s, up[0] * s + up[1] * c, up[2]))
        (r00, r01, r02), (r10, r11, _) = Rw[0], Rw[1]
        th = self._tan_half
        hypot = math.hypot
        todo = []
        for a in actors:
            dx, dy = a.x - Cx, a.y - Cy
            rad = 0.5 * hypot(a.length, a.width) + 0.5
            xc = r00 * dx + r01 * dy + r02 * (0.5 * a.height - Cz)
            if xc < -rad:
                continue
            dist = hypot(dx, dy)
            if dist > MAX_DRAW + rad:
                continue
            if abs(r10 * dx + r11 * dy) > max(xc, 0.0) * th + rad * 1.5:
                continue
            todo.append((dist, a))
        todo.sort(key=_FIRST, reverse=True)  # painter's order: far to near
        return todo, np.array(Rw), (Cx, Cy, Cz)

    def _draw_vehicles(self, out, todo, Rw: np.ndarray, C, before=None) -> None:
        """Ground shadow, body and glass cabin with a roof: shaded boxes, visible faces
        only, painted in the order given (far to near). The corners of all vehicles are
        projected at once: ``P = (Kp @ Rw) @ B_i @ template`` with ``B_i`` the vehicle's
        local frame scaled by its size; their colours (the silhouettes of the small ones,
        the faces of the others) are graded at once too."""
        n = len(todo)
        Cx, Cy, Cz = C
        f = self._f
        rows, tints, trig, small = [], [], [], []
        for d, a in todo:
            c, s = math.cos(a.yaw), math.sin(a.yaw)
            rows += (a.length * c, -a.width * s, 0.0, a.x - Cx,
                     a.length * s, a.width * c, 0.0, a.y - Cy,
                     0.0, 0.0, a.height, -Cz)
            tints += _SHADOW
            tints += a.color
            tints += _GLASS
            trig.append((c, s))
            small.append(f * a.height < _SIMPLE_PX * d)
        B = np.array(rows).reshape(n, 3, 4)
        P = np.matmul(np.matmul(self._Kp @ Rw, B), _TPL)     # (n, 3, K): (u w, v w, w = depth)
        behind = (P[:, 2] < NEAR).any(axis=1).tolist()
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = P[:, :2] / P[:, 2:3]
        # (NaN only for vehicles handled by clipping)
        np.minimum(np.maximum(uv, -1e7, out=uv), 1e7, out=uv)
        pts_all = np.rint(uv).astype(np.int32).transpose(0, 2, 1).copy()  # (n, K, 2)
        tints = np.array(tints, np.float64).reshape(n, 3, 3)
        al = self.look.haze_alpha(np.array([d for d, _ in todo]))
        # the small (far) ones are drawn as silhouettes: shadow, body, cabin
        sil = self._graded(tints, self._sil_shade, al)
        small = [sm and not bh for sm, bh in zip(small, behind)]
        faces = None if all(small) else self._vehicle_faces(tints, trig, al)
        aa = cv2.LINE_AA
        fill = cv2.fillConvexPoly
        hull = cv2.convexHull
        for i, (dist, a) in enumerate(todo):
            if before is not None:
                before(dist)  # what lies farther (roadside objects) first
            pts = pts_all[i]
            shadow, body, glass = sil[i]
            if small[i]:
                fill(out, pts[:4], shadow, aa, SHIFT)
                fill(out, hull(pts[4:12]), body, aa, SHIFT)
                fill(out, hull(pts[12:20]), glass, aa, SHIFT)
                continue
            clip = behind[i]
            cam = None
            if clip:
                # camera coordinates for near-plane clipping: undo the projection
                cam = np.matmul(np.matmul(Rw, B[i]), _TPL)
                self._fill(out, None, _SHADOW_IDX, cam, shadow)
            else:
                fill(out, pts[:4], shadow, aa, SHIFT)
            # the camera in the vehicle's frame decides which faces are visible
            c, s = trig[i]
            dxa, dya = Cx - a.x, Cy - a.y
            cam_f = dxa * c + dya * s
            cam_r = -dxa * s + dya * c
            cols = faces[i]
            for bi, (f0, ln, wd, _z0, z1, _, _) in enumerate(_boxes(a.length, a.width, a.height)):
                fidx = _FACE_IDX[bi]
                vis = []  # (top, front, rear, right, left)
                if Cz > z1:
                    vis.append(0)
                if cam_f > f0 + 0.5 * ln:
                    vis.append(1)
                elif cam_f < f0 - 0.5 * ln:
                    vis.append(2)
                if cam_r > 0.5 * wd:
                    vis.append(3)
                elif cam_r < -0.5 * wd:
                    vis.append(4)
                for k in vis:
                    if clip:
                        self._fill(out, None, fidx[k], cam, cols[5 * bi + k])
                    else:
                        fill(out, pts[fidx[k]], cols[5 * bi + k], aa, SHIFT)

    def _vehicle_faces(self, tints: np.ndarray, trig, al: np.ndarray) -> list:
        """Colours of the faces of vehicles drawn face by face: (n, 10, 3) int lists,
        per box (body, cabin) its (top, front, rear, right, left) faces, sun-shaded by
        their orientation. ``tints`` (n, 3, 3): each vehicle's colour rows (shadow,
        :data:`_C_BODY`, :data:`_C_GLASS`); ``trig``: (cos, sin) of each one's yaw;
        ``al`` (n,): haze opacities."""
        amb = self.look.ambient
        cs = np.array(trig)
        # sun . normal of the (front, rear, right, left) faces: c (sx, -sx, sy, -sy) +
        # s (sy, -sy, -sx, sx), the same products and sums as face by face
        lam = cs[:, :1] * self._sun_c + cs[:, 1:] * self._sun_s
        shade = np.empty((len(cs), 2, 5))
        shade[:, :, 0] = (amb + (1.0 - amb) * max(self._sun[2], 0.0)) * 1.12  # top
        shade[:, :, 1:] = (amb + (1.0 - amb) * np.maximum(lam, 0.0))[:, None]
        return self._graded(tints[:, _FACE_TINT].reshape(-1, 10, 3), shade.reshape(-1, 10), al)

    # -- roadside objects ---------------------------------------------------------------------
    def _scene_pre(self) -> None:
        """Per look: each object's graded colours (before haze) per face (4 sides, top,
        bottom; silhouettes use entry 0)."""
        S = self.scenery
        L = self.look
        amb = L.ambient
        sun = self._sun
        n = len(S)
        lam = S.normals[:, :, 0] * sun[0] + S.normals[:, :, 1] * sun[1]      # (n, 4)
        shade = np.empty((n, 6))
        shade[:, :4] = amb + (1.0 - amb) * np.maximum(lam, 0.0)
        shade[:, 4] = (amb + (1.0 - amb) * max(sun[2], 0.0)) * 1.12
        shade[:, 5] = amb * 0.8
        sil = S.kind != KIND_SOLID
        shade[sil, 0] = amb + (1.0 - amb) * 0.55 * max(sun[2], 0.4)
        base = np.repeat(S.colour[:, :1], 6, axis=1)
        base[:, 4] = S.colour[:, 1]
        gain = np.asarray(L.gain)
        bias = np.asarray(L.bias)
        self._scn_graded = base * shade[:, :, None] * gain + bias                 # (n, 6, 3)
        self._scn_haze = np.asarray(L.haze_colour, np.float64)
        self._scn_reach = float(S.max_dist.max()) if n else 0.0
        G = 8 * max(self._W, self._H)
        self._guard = (np.array([-G, -G]) * ONE, np.array([self._W + G, self._H + G]) * ONE)
        self._guard_box = (-G, -G, self._W + G, self._H + G)
        self._scn_cache: tuple[float, float, np.ndarray] | None = None
        self._side_idx = [np.array(f, np.intp) for f in BOX_SIDES]
        self._top_idx = np.array(BOX_TOP, np.intp)
        self._clip_faces = [list(f) for f in BOX_SIDES] + [list(BOX_TOP)]
        self._edges = {KIND_BOX: _edges(BOX_FACES6), KIND_CANOPY: _edges(HEX_FACES)}

    _SCN_RECACHE = 20.0  # [m]: the candidate set is refreshed when the camera moves this far

    def _scene_candidates(self, Cx: float, Cy: float) -> tuple | None:
        """The objects that may be in range of a camera at (Cx, Cy) -- those within
        their reach plus :attr:`_SCN_RECACHE` of the last refresh point, a superset, so
        frames do not depend on the cache -- as contiguous per-object arrays."""
        c = self._scn_cache
        if c is None or math.hypot(Cx - c[0], Cy - c[1]) > self._SCN_RECACHE:
            S = self.scenery
            d = np.hypot(S.centre[:, 0] - Cx, S.centre[:, 1] - Cy)
            idx = np.nonzero(d <= S.reach + self._SCN_RECACHE)[0]
            if len(idx):
                n = len(idx)
                H4 = np.concatenate([S.centre[idx], np.ones((n, 1))], axis=1)
                rad = S.radius[idx]
                fr = S.frame[idx]
                # the camera's (x, y, 1) -> its position in each footprint's frame
                A = np.zeros((n, 2, 3))
                A[:, 0, 0], A[:, 0, 1] = fr[:, 2], fr[:, 3]
                A[:, 0, 2] = -(fr[:, 0] * fr[:, 2] + fr[:, 1] * fr[:, 3])
                A[:, 1, 0], A[:, 1, 1] = -fr[:, 3], fr[:, 2]
                A[:, 1, 2] = fr[:, 0] * fr[:, 3] - fr[:, 1] * fr[:, 2]
                th = self._tan_half
                arrays = (H4, S.reach[idx] ** 2, -rad, rad * math.sqrt(1.0 + th * th), A,
                          np.ascontiguousarray(fr[:, 4:6]), np.ascontiguousarray(S.corners[idx]),
                          S.kind[idx].tolist(), self._scn_graded[idx] - self._scn_haze, S.z[idx, 1].tolist())
            else:
                arrays = None
            c = (Cx, Cy, arrays)
            self._scn_cache = c
        return c[2]

    def _scene_items(self, Rw: np.ndarray, C):
        """The objects in view: (distances far to near, draw order (indices into the
        rest), kinds, near-clipped flags, pixel corners (k, 12, 2) int32 in cv2 shift
        units, camera-axes corners (k, 12, 3) or None, colours (k, 6, 3) int lists,
        footprint-frame camera positions (k, 2), footprint half sizes (k, 2), object
        tops (k,), camera height, small-in-the-image flags); None when nothing is in
        view."""
        Cx, Cy, Cz = C
        cand = self._scene_candidates(Cx, Cy)
        if cand is None:
            return None
        H4, reach2, nrad, rads, A, half, corners, kinds, gmh, ztop = cand
        # one product: horizontal offsets from the camera and camera-axes centres
        M = np.empty((4, 4))
        M[:2] = ((1.0, 0.0, 0.0, -Cx), (0.0, 1.0, 0.0, -Cy))
        M[2:, :3] = Rw[:2]
        M[2:, 3] = -(Rw[:2] @ C)
        q = H4 @ M.T                                                           # (k, 4)
        xc = q[:, 2]
        q2 = q[:, :2]
        keep = (np.einsum("ij,ij->i", q2, q2) <= reach2) & (xc > nrad) & \
            (np.abs(q[:, 3]) - xc * self._tan_half <= rads)
        sel = np.nonzero(keep)[0]
        if not len(sel):
            return None
        rel = corners[sel] - C                                                 # (k, 12, 3)
        P = rel @ (self._Kp @ Rw).T                                           # (u w, v w, w = depth)
        depth = P[:, :, 2]
        nf = (depth >= NEAR).sum(axis=1)
        behind = nf < 12
        anyb = bool(behind.any())
        if anyb:
            ok = nf > 0
            if not ok.all():
                sel, rel, P, behind = sel[ok], rel[ok], P[ok], behind[ok]
                if not len(sel):
                    return None
            with np.errstate(divide="ignore", invalid="ignore"):
                uv = P[:, :, :2] / P[:, :, 2:3]
            np.clip(np.nan_to_num(uv), -1e7, 1e7, out=uv)
        else:
            uv = P[:, :, :2] / P[:, :, 2:3]
            np.clip(uv, -1e7, 1e7, out=uv)
        pts = np.rint(uv).astype(np.int32)
        pv = pts[:, :8, 1]
        small = (pv.max(axis=1) - pv.min(axis=1) < _SOLID_SIMPLE_PX * ONE).tolist()
        # far outside the image (an object close to the camera): drawn clipped to a guard
        # band, as cv2's fill cost grows with the polygon's extent
        g = self._guard
        lo = pts.min(axis=1)
        hi = pts.max(axis=1)
        huge = ((lo < g[0]) | (hi > g[1])).any(axis=1)
        if huge.any():
            behind |= huge
            anyb = True
        # the camera in each footprint's frame; footprint distance (painter's order, haze)
        loc = A[sel] @ (Cx, Cy, 1.0)                                           # (k, 2)
        hs = half[sel]
        e = np.abs(loc) - hs
        np.maximum(e, 0.0, out=e)
        ds = np.hypot(e[:, 0], e[:, 1])
        col = gmh[sel] * self.look.haze_transmission(ds)[:, None, None]
        col += self._scn_haze
        np.clip(col, 0.0, 255.0, out=col)
        order = np.argsort(-ds, kind="stable").tolist()
        sl = sel.tolist()
        return (ds[order].tolist(), order, [kinds[i] for i in sl], behind.tolist(), pts,
                rel @ Rw.T if anyb else None, col.astype(np.int32).tolist(), loc.tolist(), hs.tolist(),
                [ztop[i] for i in sl], Cz, small)

    def _draw_items(self, out: np.ndarray, items, j0: int, j1: int) -> None:
        """Draw items ``j0 .. j1 - 1`` (in draw order) of :meth:`_scene_items`."""
        _, order, kinds, clipped, pts, cams, cols, loc, half, ztop, Cz, small = items
        aa = cv2.LINE_AA
        fill = cv2.fillConvexPoly
        hull = cv2.convexHull
        sides = self._side_idx
        top = self._top_idx
        for j in order[j0:j1]:
            kind = kinds[j]
            col = cols[j]
            if kind == KIND_SOLID or clipped[j]:
                lf, lr = loc[j]
                hl, hw = half[j]
                v = (lf > hl, lr > hw, lf < -hl, lr < -hw, Cz > ztop[j])
                if clipped[j]:
                    self._draw_clipped(out, kind, cams[j], col, v)
                    continue
                p = pts[j]
                if small[j]:
                    # small in the image: one silhouette in the colour of a visible side
                    k = 0 if v[0] else (1 if v[1] else (2 if v[2] else 3))
                    fill(out, hull(p[:8]), tuple(col[k]), aa, SHIFT)
                    continue
                for k in range(4):
                    if v[k]:
                        fill(out, p[sides[k]], tuple(col[k]), aa, SHIFT)
                if v[4]:
                    fill(out, p[top], tuple(col[4]), aa, SHIFT)
            elif kind == KIND_CANOPY:
                fill(out, hull(pts[j]), tuple(col[0]), aa, SHIFT)
            else:
                fill(out, hull(pts[j][:8]), tuple(col[0]), aa, SHIFT)

    def _draw_clipped(self, out: np.ndarray, kind: int, cam: np.ndarray, col, vis) -> None:
        """An object crossing the near plane or reaching far outside the image: solids
        face by face (the visible faces, clipped), others as the silhouette of their
        corners in front of the plane and their edges' crossings of it; polygons are
        clipped to a guard band around the image before filling."""
        if kind == KIND_SOLID:
            c8 = cam[:8]
            front = (c8[:, 0] >= NEAR).tolist()
            for k in range(5):
                if vis[k]:
                    face = self._clip_faces[k]
                    if all(front[i] for i in face):
                        self._guard_fill(out, self.model.project(c8[face]), tuple(col[k]))
                    elif any(front[i] for i in face):
                        poly = clip_near(c8[face])
                        if len(poly) >= 3:
                            self._guard_fill(out, self.model.project(poly), tuple(col[k]))
            return
        e0, e1 = self._edges[kind]
        nc = 12 if kind == KIND_CANOPY else 8
        A, B = cam[e0], cam[e1]
        xa, xb = A[:, 0], B[:, 0]
        cross = (xa >= NEAR) != (xb >= NEAR)
        t = (NEAR - xa[cross]) / (xb[cross] - xa[cross])
        c = cam[:nc]
        pts3 = np.concatenate([c[c[:, 0] >= NEAR], A[cross] + t[:, None] * (B[cross] - A[cross])])
        if len(pts3) < 3:
            return
        uv = self.model.project(pts3)
        hull = cv2.convexHull(uv.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        self._guard_fill(out, hull, tuple(col[0]))

    def _guard_fill(self, out: np.ndarray, uv: np.ndarray, colour) -> None:
        """Fill the convex polygon ``uv`` (K, 2) [px], clipped to the guard band."""
        x0, y0, x1, y1 = self._guard_box
        poly = uv.tolist()
        for axis, lim, keep_above in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
            if not poly:
                return
            res = []
            n = len(poly)
            for i in range(n):
                a, b = poly[i], poly[(i + 1) % n]
                ina = a[axis] >= lim if keep_above else a[axis] <= lim
                inb = b[axis] >= lim if keep_above else b[axis] <= lim
                if ina:
                    res.append(a)
                if ina != inb:
                    t = (lim - a[axis]) / (b[axis] - a[axis])
                    res.append([a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])])
            poly = res
        if len(poly) < 3:
            return
        p = np.rint(np.array(poly) * ONE).astype(np.int32)
        cv2.fillConvexPoly(out, p, colour, cv2.LINE_AA, SHIFT)

    def _draw_scene(self, out: np.ndarray, ego: VehicleState, actors: Sequence[ActorState]) -> None:
        """Roadside objects and vehicles, together in painter's order (far to near)."""
        todo, Rw, C = self._actor_todo(ego, actors)
        items = self._scene_items(Rw, C)
        if items is None:
            if todo:
                self._draw_vehicles(out, todo, Rw, C)
            return
        dists = items[0]
        n = len(dists)
        # (draw order j -> item order[j]; dists are in draw order)
        pos = [0]

        def before(dist: float) -> None:
            i = j = pos[0]
            while j < n and dists[j] >= dist:
                j += 1
            if j > i:
                self._draw_items(out, items, i, j)
            pos[0] = j

        if todo:
            self._draw_vehicles(out, todo, Rw, C, before=before)
        self._draw_items(out, items, pos[0], n)

    # -- traffic lights, stop lines and walkers --------------------------------------------
    def _draw_urban(self, out: np.ndarray, ego: VehicleState, actors: Sequence[ActorState],
                    lights: Sequence[TrafficLight], walkers: Sequence[WalkerState]) -> None:
        """Stop lines on the ground first (under everything), then traffic lights,
        walkers, vehicles and roadside objects together in painter's order (far to near,
        horizontal distance from the camera)."""
        todo, Rw, C = self._actor_todo(ego, actors)
        lights = _near_lights(lights, C)
        if lights:
            self._paint_stop_lines(out, Rw, C, lights)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            objs = self._urban_objects(Rw, C, lights, walkers)
        od = [o[0] for o in objs]
        no = len(objs)
        items = self._scene_items(Rw, C) if self.scenery is not None else None
        sd = items[0] if items is not None else []
        ns = len(sd)
        pos = [0, 0]

        def before(dist: float) -> None:
            i, j = pos
            while True:
                s_ok = i < ns and sd[i] >= dist
                o_ok = j < no and od[j] >= dist
                if s_ok and (not o_ok or sd[i] >= od[j]):
                    self._draw_items(out, items, i, i + 1)
                    i += 1
                elif o_ok:
                    self._draw_object(out, objs[j])
                    j += 1
                else:
                    break
            pos[0], pos[1] = i, j

        if todo:
            self._draw_vehicles(out, todo, Rw, C, before=before)
        before(-math.inf)

    def _paint_stop_lines(self, out: np.ndarray, Rw: np.ndarray, C, lights, colour=None) -> None:
        """White bands :data:`STOP_LINE_WIDTH` wide across each light's ``stop_line``,
        graded and hazed like the ground at their distance (or all in ``colour``).
        (Few lights are near: plain floats, no arrays.)"""
        Cx, Cy, Cz = C
        L = self.look
        th = self._tan_half
        (r00, r01, r02), (r10, r11, r12) = Rw[0].tolist(), Rw[1].tolist()
        KR = (self._Kp @ Rw).tolist()
        x0g, y0g, x1g, y1g = (v * ONE for v in self._guard_box)
        hw = 0.5 * STOP_LINE_WIDTH
        for lt in lights:
            (x0, y0), (x1, y1) = lt.stop_line
            half = 0.5 * math.hypot(x1 - x0, y1 - y0)
            if half <= 0.0:
                continue
            mx, my = 0.5 * (x0 + x1) - Cx, 0.5 * (y0 + y1) - Cy
            d = math.hypot(mx, my)
            xc = r00 * mx + r01 * my - r02 * Cz
            if d > LIGHT_DRAW + half or xc < -half:
                continue
            yc = r10 * mx + r11 * my - r12 * Cz
            if abs(yc) > max(xc, 0.0) * th + 1.5 * half + 1.0:
                continue
            hx, hy = hw * math.cos(lt.yaw), hw * math.sin(lt.yaw)
            quad = ((x0 - hx - Cx, y0 - hy - Cy), (x1 - hx - Cx, y1 - hy - Cy),
                    (x1 + hx - Cx, y1 + hy - Cy), (x0 + hx - Cx, y0 + hy - Cy))
            if colour is None:
                a = L.haze_alpha(d)
                sheen = L.wet_sheen(d)
                col = tuple(int(min(max(((_PAINT[k] * L.gain[k] + L.bias[k]) * (1.0 - sheen)
                                         + sheen * L.sky_horizon[k]) * (1.0 - a) + L.haze_colour[k] * a,
                                        0.0), 255.0)) for k in range(3))
            else:
                col = colour
            pts = []
            for qx, qy in quad:
                w = KR[2][0] * qx + KR[2][1] * qy - KR[2][2] * Cz
                if w < NEAR:
                    break
                u = (KR[0][0] * qx + KR[0][1] * qy - KR[0][2] * Cz) / w
                v = (KR[1][0] * qx + KR[1][1] * qy - KR[1][2] * Cz) / w
                if not (x0g < u < x1g and y0g < v < y1g):
                    break
                pts.append((round(u), round(v)))
            if len(pts) == 4:
                cv2.fillConvexPoly(out, np.array(pts, np.int32), col, cv2.LINE_AA, SHIFT)
                continue
            cam = np.array([(qx, qy, -Cz) for qx, qy in quad]) @ Rw.T
            front = cam[:, 0] >= NEAR
            if not front.any():
                continue
            if not front.all():
                cam = clip_near(cam)
                if len(cam) < 3:
                    continue
            self._guard_fill(out, self.model.project(cam), col)

    def _project_parts(self, B: np.ndarray, tpl: np.ndarray, KR: np.ndarray, nparts: int):
        """Corners of ``nparts`` 8-corner parts per object: ``B`` (k, 3, M) object
        frames relative to the camera times ``tpl`` (M, N >= nparts * 8) -> (pixel
        corners (k, nparts, 8, 2) int32 in cv2 shift units, contiguous, drawable directly
        (all corners in front of the near plane, within the guard band) (k, nparts) bool,
        any corner in front of the near plane (k, nparts) bool, points relative to the
        camera (k, 3, N), projected points (k, 3, N)). Call under
        ``np.errstate(divide="ignore", invalid="ignore")`` (parts behind the camera)."""
        rel = np.matmul(B, tpl)
        P = np.matmul(KR, rel)
        k, m = len(B), nparts * 8
        Pm = P[:, :, :m]
        front = Pm[:, 2] >= NEAR                                                # (k, m)
        uv = Pm[:, :2] / Pm[:, 2:3]                                             # (k, 2, m)
        inside = np.abs(uv) < self._guard_abs
        ok = (front & inside[:, 0] & inside[:, 1]).reshape(k, nparts, 8).all(axis=2)
        pts = np.rint(uv).astype(np.int32).transpose(0, 2, 1).reshape(k, nparts, 8, 2)
        return pts, ok, front.reshape(k, nparts, 8).any(axis=2), rel, P

    def _graded(self, base: np.ndarray, shade: np.ndarray, al: np.ndarray) -> list:
        """Colours (k, p, 3) int lists: ``base`` (k, p, 3) RGB times ``shade`` ((k, p),
        or (p,) for all), graded by the look and hazed with opacity ``al`` (k,)
        (``1 - exp(-haze_k * distance)``): ``(base * shade * gain + bias) * (1 - al) +
        haze colour * al``, clamped to [0, 255] and truncated."""
        al = al[:, None, None]
        col = (base * shade[..., None] * self._gain + self._bias) * (1.0 - al) + self._haze * al
        np.maximum(col, 0.0, out=col)
        np.minimum(col, 255.0, out=col)
        return col.astype(np.int32).tolist()

    def _urban_objects(self, Rw: np.ndarray, C, lights, walkers, cams: bool = False) -> list:
        """The traffic lights and walkers in view, far to near: (distance [m], kind (0
        light, 1 walker), parts, lamps) with parts [(pixel points (K, 2) int32 in cv2
        shift units or None when clipped, camera-axes corners (8, 3), colour), ...]
        filled as convex hulls, and lamps [(centre (2,) shift units, radius [px],
        colour)] (the lamps of lights that face the camera). All lights and all walkers
        in view are projected in one product each (``P = Kp Rw B_i T``, ``B_i`` the
        object's frame, ``T`` the template of its parts). ``cams``: every part with its
        camera-axes corners, no silhouettes (the depth/label render)."""
        Cx, Cy, Cz = C
        th = self._tan_half
        look = self.look
        sh = 0.5 * (1.0 + look.ambient)
        KR = self._Kp @ Rw
        RwT = Rw.T
        res = []

        def collect(pts, ok, anyf, rel, cols, i, lod):
            """The parts of object i (ok, anyf: lists); ``lod``: (pixel points of
            the silhouettes (g, K, 2), colour index per silhouette) or None."""
            oki, afi, ci = ok[i], anyf[i], cols[i]
            if cams:
                return [(None, rel[i, :, 8 * p:8 * p + 8].T @ RwT, None) for p in range(len(oki)) if afi[p]]
            if lod is not None and all(oki):
                sil, idx = lod
                return [(sil[i, g], None, tuple(ci[q])) for g, q in enumerate(idx)]
            parts = []
            for p in range(len(oki)):
                if oki[p]:
                    parts.append((pts[i, p], None, tuple(ci[p])))
                elif afi[p]:
                    parts.append((None, rel[i, :, 8 * p:8 * p + 8].T @ RwT, tuple(ci[p])))
            return parts

        if lights:
            # (few lights are near: culled on plain floats)
            (r00, r01, r02), (r10, r11, r12) = Rw[0].tolist(), Rw[1].tolist()
            sl, dl = [], []
            for i, lt in enumerate(lights):
                dx, dy = lt.x - Cx, lt.y - Cy
                hm = 0.5 * (lt.height + 0.5 * _HOUSING_H)
                rad = hm + 0.5
                xc = r00 * dx + r01 * dy + r02 * (hm - Cz)
                if xc < -rad:
                    continue
                d = math.hypot(dx, dy)
                if d > LIGHT_DRAW:
                    continue
                if abs(r10 * dx + r11 * dy + r12 * (hm - Cz)) > max(xc, 0.0) * th + rad * 1.5:
                    continue
                sl.append(i)
                dl.append(d)
            if sl:
                k = len(sl)
                dist = np.array(dl)
                rows, yaws = [], []
                for i in sl:
                    lt = lights[i]
                    c, s = math.cos(lt.yaw), math.sin(lt.yaw)
                    yaws.append((c, s))
                    rows += (c, -s, 0.0, 0.0, lt.x - Cx, s, c, 0.0, 0.0, lt.y - Cy, 0.0, 0.0, 1.0, lt.height, -Cz)
                pts, ok, anyf, rel, P = self._project_parts(np.array(rows).reshape(k, 3, 5), _LIGHT_TPL, KR, 2)
                ok, anyf = ok.tolist(), anyf.tolist()
                cols = self._graded(_LIGHT_BASE, np.full((k, 5), sh), look.haze_alpha(dist))
                LP = P[:, :, 16:].transpose(0, 2, 1).tolist()   # lamps (k, 3, 3)
                for j, i in enumerate(sl):
                    lt = lights[i]
                    c, s = yaws[j]
                    lamps = []
                    # the lamps face against yaw: seen from the side the traffic comes from
                    if (Cx - lt.x + _LAMP_F * c) * c + (Cy - lt.y + _LAMP_F * s) * s < 0.0:
                        lit = int(lt.state)
                        for q in range(3):
                            uw, vw, w = LP[j][q]
                            if w < NEAR:
                                continue
                            u, v = uw / w, vw / w
                            if abs(u) > 1e7 or abs(v) > 1e7:
                                continue
                            r = self._f * _LAMP_R / w
                            if q == lit:
                                lamps.append(((round(u), round(v)), max(r, _LIT_MIN_PX), _LAMP_LIT[q]))
                            elif r >= 0.5:
                                lamps.append(((round(u), round(v)), r, tuple(cols[j][2 + q])))
                    res.append((dl[j], 0, collect(pts, ok, anyf, rel, cols, j, None), lamps))

        n = len(walkers)
        if n:
            x = np.fromiter(map(_GET_X, walkers), np.float64, n) - Cx
            y = np.fromiter(map(_GET_Y, walkers), np.float64, n) - Cy
            d = np.hypot(x, y)
            hm = 0.5 * _WALKER_CULL_H - Cz
            rad = 0.5 * _WALKER_CULL_H + 0.5
            xc = Rw[0, 0] * x + Rw[0, 1] * y + Rw[0, 2] * hm
            yc = Rw[1, 0] * x + Rw[1, 1] * y + Rw[1, 2] * hm
            keep = (d <= WALKER_DRAW) & (xc > -rad) & (np.abs(yc) <= np.maximum(xc, 0.0) * th + rad * 1.5)
            idx = np.nonzero(keep)[0]
            if len(idx):
                k = len(idx)
                dist = d[idx]
                # (flat float lists: one cheap conversion each)
                rows, bases, shades = [], [], []
                sun0, sun1 = self._sun[0], self._sun[1]
                amb = look.ambient
                nt, nsk = len(_TROUSERS), len(_SKIN)
                for i in idx.tolist():
                    w = walkers[i]
                    c, s = math.cos(w.yaw), math.sin(w.yaw)
                    h = w.height
                    sc = h / 1.75
                    rows += (sc * c, -sc * s, 0.0, w.x - Cx, sc * s, sc * c, 0.0, w.y - Cy, 0.0, 0.0, h, -Cz)
                    aid = int(w.actor_id)
                    tr = _TROUSERS[aid % nt]
                    bases += tr
                    bases += tr
                    bases += w.color
                    bases += _SKIN[(aid // 3) % nsk]
                    # the sun-lit side of the body a little brighter than its front/back
                    shades += (sh, sh, amb + (1.0 - amb) * (0.35 + 0.4 * abs(c * sun1 - s * sun0)), sh)
                pts, ok, anyf, rel, _ = self._project_parts(np.array(rows).reshape(k, 3, 4), _WALKER_TPL, KR, 4)
                cols = self._graded(np.array(bases, np.float64).reshape(k, 4, 3), np.array(shades).reshape(k, 4),
                                    look.haze_alpha(dist))
                py = pts[..., 1].reshape(k, 32)
                tall = py.max(axis=1) - py.min(axis=1)
                small = (tall < _SIMPLE_PX * ONE).tolist()
                tiny = (tall < _TINY_PX * ONE).tolist()
                # silhouettes of small walkers: legs, torso with head (parts 0-1, 2-3); of
                # tiny ones: one, in the torso's colour
                lod = (pts.reshape(k, 2, 16, 2), (0, 2))
                lod1 = (pts.reshape(k, 1, 32, 2), (2,))
                ok, anyf, dl = ok.tolist(), anyf.tolist(), dist.tolist()
                for j in range(k):
                    res.append((dl[j], 1, collect(pts, ok, anyf, rel, cols, j,
                                                  (lod1 if tiny[j] else lod) if small[j] else None), ()))
        res.sort(key=_FIRST, reverse=True)
        return res

    def _draw_object(self, out: np.ndarray, obj) -> None:
        """One traffic light or walker of :meth:`_urban_objects`: its parts as the
        convex hulls of their corners (near-clipped ones through the guard band), then
        the lamps."""
        aa = cv2.LINE_AA
        for pts, cam, col in obj[2]:
            if pts is None:
                self._clip_hull_fill(out, cam, col)
            else:
                cv2.fillConvexPoly(out, cv2.convexHull(pts), col, aa, SHIFT)
        for centre, r, col in obj[3]:
            cv2.circle(out, (int(centre[0]), int(centre[1])), max(1, round(r * ONE)), col, -1, aa, SHIFT)

    def _clip_hull_fill(self, out: np.ndarray, cam: np.ndarray, colour) -> None:
        """Fill the silhouette of a box given by its 8 camera-axes corners (bottom 4,
        top 4), the part behind the near plane cut off."""
        e0, e1 = _BOX_EDGES
        A, B = cam[e0], cam[e1]
        xa, xb = A[:, 0], B[:, 0]
        cross = (xa >= NEAR) != (xb >= NEAR)
        t = (NEAR - xa[cross]) / (xb[cross] - xa[cross])
        pts3 = np.concatenate([cam[cam[:, 0] >= NEAR], A[cross] + t[:, None] * (B[cross] - A[cross])])
        if len(pts3) < 3:
            return
        uv = np.clip(self.model.project(pts3), -1e6, 1e6)
        hull = cv2.convexHull(uv.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        self._guard_fill(out, hull, colour)

    def render_depth_labels(self, ego: VehicleState, actors: Sequence[ActorState] = (), *,
                            tags: dict[int, int] | None = None, lights: Sequence[TrafficLight] = (),
                            walkers: Sequence[WalkerState] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Depth and CARLA semantic labels of one frame
        (:meth:`.depth_labels.DepthLabelRendering.render_depth_labels`), with traffic
        lights (pole, housing: 7 TrafficLight), walkers (their boxes: 12 Pedestrians) and
        stop lines (24 RoadLines where the ground is seen) of :meth:`render`.

        Returns:
            (depth (H, W) float32 [m], labels (H, W) uint8); new arrays.
        """
        depth, labels = super().render_depth_labels(ego, actors, tags=tags)
        if lights or walkers:
            _, Rw, C = self._actor_todo(ego, ())
            lights = _near_lights(lights, C)
            if lights:
                ground = self._depth_pre()[1]
                mask = np.zeros((self._H, self._W), np.uint8)
                self._paint_stop_lines(mask, Rw, C, lights, colour=255)
                labels[(mask > 0) & (depth >= ground)] = TAG_ROADLINE
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                objs = self._urban_objects(Rw, C, lights, walkers, cams=True)
            for obj in objs:
                tag = TAG_TRAFFIC_LIGHT if obj[1] == 0 else TAG_PEDESTRIAN
                for _, cam, _ in obj[2]:
                    self._depth_solid(depth, labels, cam, BOX_FACES, tag)
        return depth, labels

    def _fill(self, out, _pts, idx, cam: np.ndarray, colour) -> None:
        """Fill the face ``idx`` of camera-space corners ``cam`` (3, K), clipped against
        the near plane."""
        poly = cam[:, idx].T  # (k, 3): x forward, y right, z up
        if (poly[:, 0] < NEAR).all():
            return
        poly = clip_near(poly)
        if len(poly) < 3:
            return
        p = np.clip(self.model.project(poly) * ONE, -1e7, 1e7)
        cv2.fillConvexPoly(out, np.rint(p).astype(np.int32), colour, cv2.LINE_AA, SHIFT)


def _edges(faces) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) corner indices of the edges of a solid given by its faces."""
    es = sorted({tuple(sorted((f[i], f[(i + 1) % len(f)]))) for f in faces for i in range(len(f))})
    return np.array([e[0] for e in es], np.intp), np.array([e[1] for e in es], np.intp)


_BOX_EDGES = _edges(BOX_FACES)

#: Stop line: a white band this wide [m], centred on ``TrafficLight.stop_line``
#: (CARLA's towns: 0.3-0.5 m).
STOP_LINE_WIDTH = 0.4
_PAINT = (226.0, 226.0, 220.0)
# traffic light [m]: a square pole, a housing on the side facing the traffic, lamps
_HOUSING_H = 0.96
_LAMP_F = 0.41          # lamp centres: this far against yaw from the pole's axis
_LAMP_R = 0.11          # lamp radius
_LAMP_DZ = (0.30, 0.0, -0.30)   # red (top), yellow, green: above the housing's centre
_LIT_MIN_PX = 0.8       # a lit lamp covers at least this radius [px] (seen from afar)
_LAMP_LIT = ((255, 36, 24), (255, 196, 24), (40, 255, 120))
_LAMP_DARK = ((60, 16, 14), (62, 52, 14), (14, 52, 26))
_POLE = (62, 64, 68)
_HOUSING = (34, 36, 38)


def _box_corners(f0: float, f1: float, r0: float, r1: float, z0: float, z1: float) -> list:
    """8 corners (forward, right, up), bottom 4 then top 4, in :data:`BOX_FACES` order."""
    q = ((f1, r0), (f1, r1), (f0, r1), (f0, r0))
    return [(f, r, z) for z in (z0, z1) for f, r in q]


#: light template, homogeneous rows (forward, right, up, height, 1) [m] in the light's
#: frame: pole (8 corners, its top rises with ``height``), housing (8, centred at
#: ``height``, on the side facing the traffic), lamp centres (3: red, yellow, green)
_LIGHT_TPL = np.array(
    [(f, r, z, 0.0 if (j < 4) else 1.0, 1.0)
     for j, (f, r, z) in enumerate(_box_corners(-0.08, 0.08, -0.08, 0.08, 0.0, 0.5 * _HOUSING_H))]
    + [(f, r, z, 1.0, 1.0) for f, r, z in _box_corners(-0.40, -0.12, -0.18, 0.18, -0.5 * _HOUSING_H,
                                                        0.5 * _HOUSING_H)]
    + [(-_LAMP_F, 0.0, dz, 1.0, 1.0) for dz in _LAMP_DZ]).T.copy()
#: base colours of a light's parts (pole, housing) and unlit lamps
_LIGHT_BASE = np.array([(_POLE, _HOUSING) + _LAMP_DARK], np.float64)
#: walker template, homogeneous rows (forward, right, up, 1): legs, legs, torso, head,
#: (forward, right) [m] for a 1.75 m walker (scaled with the height), up [height]
_WALKER_TPL = np.array(
    [(f, r, z, 1.0) for part in (
        _box_corners(-0.07, 0.07, -0.17, -0.02, 0.0, 0.49),
        _box_corners(-0.07, 0.07, 0.02, 0.17, 0.0, 0.49),
        _box_corners(-0.12, 0.12, -0.23, 0.23, 0.47, 0.84),
        _box_corners(-0.10, 0.10, -0.085, 0.085, 0.85, 1.0)) for f, r, z in part]).T.copy()
_TROUSERS = ((40, 44, 60), (58, 50, 44), (30, 30, 34), (70, 78, 96), (92, 84, 70))
_SKIN = ((232, 190, 160), (198, 150, 110), (150, 100, 70), (96, 64, 44))


_GET_X, _GET_Y = operator.attrgetter("x"), operator.attrgetter("y")
_FIRST = operator.itemgetter(0)  # (sort key: distance first)
#: walkers are culled as if this tall [m] (CARLA's tallest walkers are under 2 m)
_WALKER_CULL_H = 2.0
#: lights farther than this [m] from the camera are dropped before anything else (their
#: stop lines lie within a few lanes of the pole)
_LIGHT_PRESELECT = LIGHT_DRAW + 30.0


def _near_lights(lights, C) -> list:
    """The lights within :data:`_LIGHT_PRESELECT` of the camera position ``C``."""
    Cx, Cy = C[0], C[1]
    r2 = _LIGHT_PRESELECT ** 2
    near = []
    for lt in lights:
        dx, dy = lt.x - Cx, lt.y - Cy
        if dx * dx + dy * dy <= r2:
            near.append(lt)
    return near


_SHADOW = (18, 18, 20)
_GLASS = (38, 44, 54)
#: a vehicle's colour rows (its "tints", :meth:`Camera._draw_vehicles`): the shadow
#: (row 0), the body paint, the glass
_C_BODY, _C_GLASS = 1, 2


def _boxes(L: float, W: float, H: float):
    """(forward offset, length, width, z0, z1, side colour row, top colour row) [m] of
    the body and cabin boxes of a vehicle of size L x W x H (the dark ground shadow
    shows under the body, where the wheels are)."""
    return (
        (0.0, L, W, 0.16 * H, 0.60 * H, _C_BODY, _C_BODY),
        (-0.06 * L, 0.52 * L, 0.86 * W, 0.60 * H, H, _C_GLASS, _C_BODY),
    )


#: per box: point indices of its (top, front, rear, right, left) faces in the template
_FACE_IDX = tuple(
    tuple(np.array([4 + 8 * b + i for i in face], dtype=np.intp)
          for face in ((4, 5, 6, 7), (0, 1, 5, 4), (2, 3, 7, 6), (1, 2, 6, 5), (3, 0, 4, 7)))
    for b in range(2))
_SHADOW_IDX = np.arange(4, dtype=np.intp)
#: per box: the colour row of its (top, front, rear, right, left) faces
_FACE_TINT = np.array([[top] + [side] * 4 for *_, side, top in _boxes(1.0, 1.0, 1.0)], np.intp)


def _template() -> tuple[np.ndarray, ...]:
    """Corner template (fractions of L, W, H): 4 shadow points then 8 corners per box."""
    fs, fo, rs, zs = [], [], [], []
    # shadow: slightly larger footprint at ground level
    for f_, r_ in ((0.53, -0.56), (0.53, 0.56), (-0.53, 0.56), (-0.53, -0.56)):
        fs.append(f_); fo.append(0.0); rs.append(r_); zs.append(0.0)
    for off, ln, wd, z0, z1, _, _ in _boxes(1.0, 1.0, 1.0):
        loc = ((0.5 * ln, -0.5 * wd), (0.5 * ln, 0.5 * wd), (-0.5 * ln, 0.5 * wd), (-0.5 * ln, -0.5 * wd))
        for z in (z0, z1):
            for f_, r_ in loc:
                fs.append(f_); fo.append(off); rs.append(r_); zs.append(z)
    return tuple(np.array(v) for v in (fs, fo, rs, zs))


_TPL_F, _TPL_FO, _TPL_R, _TPL_Z = _template()
#: (4, K) template rows: forward [L], right [W], up [H], 1
_TPL = np.stack([_TPL_F + _TPL_FO, _TPL_R, _TPL_Z, np.ones_like(_TPL_Z)])


def _mix64(seed: int, frame: int) -> int:
    """SplitMix64-style hash of (seed, frame) (deterministic, platform independent)."""
    z = (int(seed) * 0x9E3779B97F4A7C15 + int(frame) * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)

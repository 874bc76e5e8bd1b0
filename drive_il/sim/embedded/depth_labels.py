"""Depth and semantic labels from the embedded camera: what CARLA's
``sensor.camera.depth`` and ``sensor.camera.semantic_segmentation`` see.

:class:`DepthLabelRendering` is mixed into :class:`drive_il.sim.embedded.camera.Camera`
(it uses that camera's pinhole model, spec and raster): per pixel the depth [m] along
the camera's forward axis (CARLA's depth is planar, not the distance along the ray;
capped at :data:`FAR_DEPTH`, the sky is at :data:`FAR_DEPTH`) and the CARLA semantic tag
(:data:`LANE_CLASS_TAGS` for the ground from the raster's lane class, 24 road line where
a road surface carries paint, 11 sky, 14 car or the tag given per vehicle, and for the
roadside objects of a seeded appearance (:class:`~.appearance.Scenery`) 3 building,
5 fence, 6 pole, 9 vegetation). It uses exact plane intersections (flat ground z = 0,
vehicles as their body and cabin boxes, objects as their boxes and prisms) and no
anti-aliasing; it shares nothing mutable with the RGB path. Tags: CARLA 0.9.16
``carla::rpc::CityObjectLabel`` (``LibCarla/source/carla/rpc/ObjectLabel.h``).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence

import cv2
import numpy as np

from ...maps.geometry import LaneClass
from ...types import ActorState, VehicleState
from .projection import BOX_FACES, MAX_DRAW, NEAR, ONE, SHIFT, clip_near
from .raster import MapRaster

__all__ = ["FAR_DEPTH", "LANE_CLASS_TAGS", "TAG_CAR", "TAG_SKY", "DepthLabelRendering"]

#: Depth of the sky and cap of every depth [m] (CARLA's depth camera range).
FAR_DEPTH = 1000.0
#: CARLA 0.9.16 semantic tags (``carla::rpc::CityObjectLabel``) used here.
TAG_ROAD, TAG_SIDEWALK, TAG_TERRAIN, TAG_SKY, TAG_CAR, TAG_ROADLINE, TAG_GROUND = 1, 2, 10, 11, 14, 24, 25
#: LaneClass code (raster channel 3) -> CARLA semantic tag of the ground.
LANE_CLASS_TAGS: dict[LaneClass, int] = {
    LaneClass.TERRAIN: TAG_TERRAIN, LaneClass.DRIVING: TAG_ROAD,
    LaneClass.SHOULDER: TAG_ROAD, LaneClass.SIDEWALK: TAG_SIDEWALK,
    LaneClass.PARKING: TAG_ROAD, LaneClass.BORDER: TAG_SIDEWALK,
    LaneClass.MEDIAN: TAG_TERRAIN, LaneClass.BIKING: TAG_ROAD, LaneClass.OTHER: TAG_GROUND,
}



class DepthLabelRendering:
    """The depth/label render of a :class:`~drive_il.sim.embedded.camera.Camera` (a
    mixin: it reads the camera's ``spec``, ``raster``, ``model`` and projection caches)."""

    def _depth_pre(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ground mask (H, W) bool, ground depth (H, W) float32 [m], tag LUT (256,) uint8)
        for this spec (computed once, on first use)."""
        pre = getattr(self, "_dl_pre", None)
        if pre is None:
            H, W = self._H, self._W
            u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
            Q = self._Q  # pixel -> vehicle-frame ray whose camera-forward component is 1
            rz = Q[2, 0] * u + Q[2, 1] * v + Q[2, 2]
            ground = rz < -1e-12
            with np.errstate(divide="ignore", invalid="ignore"):
                d = np.where(ground, -self.spec.z / rz, FAR_DEPTH)
            depth = np.minimum(d, FAR_DEPTH).astype(np.float32)
            lut = np.full(256, TAG_GROUND, np.uint8)
            for k, t in LANE_CLASS_TAGS.items():
                lut[int(k)] = t
            pre = (ground, depth, lut)
            self._dl_pre = pre
        return pre

    def render_depth_labels(self, ego: VehicleState, actors: Sequence[ActorState] = (), *,
                            tags: dict[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Render depth and semantic labels of one frame (see the module docstring).

        Args:
            ego: the vehicle carrying the camera.
            actors: other vehicles.
            tags: CARLA semantic tag per actor id (default 14, car).

        Returns:
            (depth (H, W) float32 [m] along the camera's forward axis, capped at
            :data:`FAR_DEPTH`; labels (H, W) uint8 CARLA semantic tags); new arrays.
        """
        ground, gdepth, lut = self._depth_pre()
        r = self.raster
        A, (Cx, Cy, Cz), (c, s) = self._ground_to_raster(ego)
        M = A @ self._Q
        labels = cv2.warpPerspective(_tag_raster(r), M, (self._W, self._H),
                                     flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_CONSTANT,
                                     borderValue=int(lut[r.border_value[3]]))
        labels[~ground] = TAG_SKY
        depth = gdepth.copy()
        if actors:
            self._depth_actors(depth, labels, (Cx, Cy, Cz), c, s, actors, tags or {})
        if getattr(self, "scenery", None) is not None:
            self._depth_scenery(depth, labels, (Cx, Cy, Cz), c, s)
        return depth, labels

    def _depth_scenery(self, depth: np.ndarray, labels: np.ndarray, C, c: float, s: float) -> None:
        """Z-buffer the roadside objects' front faces (within their reach, as the RGB
        render, and the horizontal field of view) into ``depth`` / ``labels``."""
        from .appearance import BOX_FACES6, HEX_FACES, KIND_CANOPY
        S = self.scenery
        Cx, Cy, Cz = C
        fw, rt, up = self._axes
        Rw = np.array(((fw[0] * c - fw[1] * s, fw[0] * s + fw[1] * c, fw[2]),
                       (rt[0] * c - rt[1] * s, rt[0] * s + rt[1] * c, rt[2]),
                       (up[0] * c - up[1] * s, up[0] * s + up[1] * c, up[2])))
        cen = S.centre - (Cx, Cy, Cz)
        d = np.hypot(cen[:, 0], cen[:, 1])
        xc = cen @ Rw[0]
        yc = cen @ Rw[1]
        th = self._tan_half
        keep = (d <= S.reach) & (xc > -S.radius) & \
            (np.abs(yc) - xc * th <= S.radius * math.sqrt(1.0 + th * th))
        for i in np.nonzero(keep)[0]:
            canopy = S.kind[i] == KIND_CANOPY
            cam = (S.corners[i] if canopy else S.corners[i, :8]) - (Cx, Cy, Cz)
            cam = cam @ Rw.T
            self._depth_solid(depth, labels, cam, HEX_FACES if canopy else BOX_FACES6, int(S.tag[i]))

    def _depth_actors(self, depth: np.ndarray, labels: np.ndarray, C, c: float, s: float,
                      actors: Sequence[ActorState], tags: dict[int, int]) -> None:
        """Z-buffer the vehicles' boxes into ``depth`` / ``labels``."""
        Cx, Cy, Cz = C
        fw, rt, up = self._axes
        Rw = np.array(((fw[0] * c - fw[1] * s, fw[0] * s + fw[1] * c, fw[2]),
                       (rt[0] * c - rt[1] * s, rt[0] * s + rt[1] * c, rt[2]),
                       (up[0] * c - up[1] * s, up[0] * s + up[1] * c, up[2])))
        th = self._tan_half
        for a in actors:
            dx, dy = a.x - Cx, a.y - Cy
            rad = 0.5 * math.hypot(a.length, a.width) + 0.5
            xc = Rw[0, 0] * dx + Rw[0, 1] * dy + Rw[0, 2] * (0.5 * a.height - Cz)
            if xc < -rad or math.hypot(dx, dy) > MAX_DRAW + rad:
                continue
            yc = Rw[1, 0] * dx + Rw[1, 1] * dy
            if abs(yc) > max(xc, 0.0) * th + rad * 1.5:
                continue
            tag = int(tags.get(a.actor_id, TAG_CAR))
            ca, sa = math.cos(a.yaw), math.sin(a.yaw)
            L, Wd, Hh = a.length, a.width, a.height
            for off, ln, wd, z0, z1 in ((0.0, L, Wd, 0.0, 0.60 * Hh),
                                        (-0.06 * L, 0.52 * L, 0.86 * Wd, 0.60 * Hh, Hh)):
                loc = []
                for z in (z0, z1):
                    for f_, r_ in ((0.5, -0.5), (0.5, 0.5), (-0.5, 0.5), (-0.5, -0.5)):
                        fx, ry = off + f_ * ln, r_ * wd
                        loc.append((a.x + fx * ca - ry * sa - Cx, a.y + fx * sa + ry * ca - Cy, z - Cz))
                self._depth_solid(depth, labels, np.array(loc) @ Rw.T, BOX_FACES, tag)

    def _depth_solid(self, depth: np.ndarray, labels: np.ndarray, cam: np.ndarray,
                     faces: Sequence[Sequence[int]], tag: int) -> None:
        """Z-buffer the front faces of a convex solid: ``cam`` (K, 3) its corners in camera
        axes (forward, right, up; the camera at the origin), ``faces`` corner indices."""
        centre = cam.mean(axis=0)
        for face in faces:
            poly = cam[list(face)]
            n = np.cross(poly[1] - poly[0], poly[2] - poly[0])
            if float(n @ (poly.mean(axis=0) - centre)) < 0.0:
                n = -n  # outward
            dpl = float(n @ poly[0])
            if dpl >= 0.0:
                continue  # back face
            self._depth_face(depth, labels, poly, n, dpl, tag)

    def _depth_face(self, depth: np.ndarray, labels: np.ndarray, poly: np.ndarray,
                    n: np.ndarray, dpl: float, tag: int) -> None:
        if (poly[:, 0] < NEAR).all():
            return
        poly = clip_near(poly)
        if len(poly) < 3:
            return
        p = np.clip(self.model.project(poly), -1e6, 1e6)
        H, W = self._H, self._W
        x0 = max(math.floor(p[:, 0].min()), 0)
        x1 = min(math.ceil(p[:, 0].max()) + 1, W)
        y0 = max(math.floor(p[:, 1].min()), 0)
        y1 = min(math.ceil(p[:, 1].max()) + 1, H)
        if x0 >= x1 or y0 >= y1:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = np.rint((p - (x0, y0)) * ONE).astype(np.int32)
        cv2.fillConvexPoly(mask, pts, 1, cv2.LINE_8, SHIFT)
        f = self._f
        u = (np.arange(x0, x1, dtype=np.float64) - self._cxi) / f
        v = -(np.arange(y0, y1, dtype=np.float64) - self._cyi) / f
        den = n[0] + n[1] * u[None, :] + n[2] * v[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = dpl / den
        droi = depth[y0:y1, x0:x1]
        sel = (mask > 0) & (x > 0.0) & (x < droi)
        droi[sel] = np.minimum(x[sel], FAR_DEPTH)
        labels[y0:y1, x0:x1][sel] = tag


#: Semantic tag image per raster (derived data of the raster, dropped with it).
_TAG_RASTERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: raster colour channel value from which a road pixel is paint (lane marks are painted
#: at 228 with anti-aliased edges; asphalt stays under 130)
_PAINT_MIN = 160
_ROAD_CLASSES = (LaneClass.DRIVING, LaneClass.SHOULDER, LaneClass.PARKING, LaneClass.BIKING)


def _tag_raster(raster: MapRaster) -> np.ndarray:
    """(H, W) uint8 CARLA semantic tags of the raster's level 0 (:data:`LANE_CLASS_TAGS`,
    24 RoadLine for the paint on road surfaces); computed once per raster."""
    t = _TAG_RASTERS.get(raster)
    if t is None:
        lut = np.full(256, TAG_GROUND, np.uint8)
        road = np.zeros(256, np.uint8)
        for k, tag in LANE_CLASS_TAGS.items():
            lut[int(k)] = tag
        for k in _ROAD_CLASSES:
            road[int(k)] = 255
        cls = np.ascontiguousarray(raster.classes)
        t = cv2.LUT(cls, lut)
        rgb = raster.levels[0]
        paint = cv2.max(cv2.max(rgb[..., 0], rgb[..., 1]), rgb[..., 2])
        cv2.threshold(paint, _PAINT_MIN - 1, 255, cv2.THRESH_BINARY, dst=paint)
        cv2.bitwise_and(paint, cv2.LUT(cls, road), dst=paint)
        t[paint > 0] = TAG_ROADLINE
        _TAG_RASTERS[raster] = t
    return t


"""The path head (issue 17, item 3): output shape of every architecture with
``[output] kind = "path"``, the x reconstruction of a lateral-only head, the
PolicyDriver following a predicted path with the expert's pure pursuit (straight and
arc routes, open and closed loop), checkpoints, and the 1/r presets left as they were."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from drive_il.control import curvature_to_steer, pure_pursuit_curvature
from drive_il.data.dataset import route_path_labels
from drive_il.expert.config import ExpertConfig
from drive_il.geometry import project_onto_polyline
from drive_il.policies.checkpoint import CheckpointInfo, VehicleParams, load_checkpoint, save_checkpoint
from drive_il.policies.driver import PolicyDriver
from drive_il.policies.ensemble import EnsembleDriver
from drive_il.policies.path import (
    PursuitParams,
    lateral_to_points,
    lookahead_distance,
    path_point_at,
    path_steer,
    path_steer_batch,
)
from drive_il.policies.presets import OutputConfig
from drive_il.policies.registry import build_policy, load_model_preset, model_preset_from_dict
from drive_il.types import Observation, RoadOption, Step

D = tuple(float(d) for d in range(1, 11))
L, MAX_ANGLE = 2.9, math.radians(35.0)
RIG = [dict(name="center", width=200, height=66, fov_deg=60.0, x=1.4, y=0.0, z=1.5, pitch_deg=-8.0, yaw_deg=0.0)]


def _path_preset(arch: str, **out):
    p = load_model_preset(arch)
    return p.replace(output=OutputConfig(kind="path", **out))


def _step(speed=6.0, command=RoadOption.LANEFOLLOW, t=0.0):
    frame = np.zeros((66, 200, 3), np.uint8)
    return Step(observation=Observation(frames={"center": frame}, speed=speed, command=command, sim_time=t),
                world_state=None)


# ---------------------------------------------------------------- the module

@pytest.mark.parametrize("arch,predict_x", [("dave2", False), ("dave2_branched", False), ("dave2_branched", True),
                                            ("alvinn", True)])
def test_path_head_output_shape_and_steer(arch, predict_x):
    preset = _path_preset(arch, predict_x=predict_x, path_distances=(2.0, 4.0, 6.0, 8.0))
    torch.manual_seed(0)
    m = build_policy(preset).eval()
    assert m.output_kind == "path"
    last = [mod for mod in m.modules() if isinstance(mod, nn.Linear)][-1]
    assert last.out_features == (8 if predict_x else 4)
    x = torch.rand((3, *preset.preprocessing.shape)) * 255
    cmd = torch.tensor([int(RoadOption.LANEFOLLOW), int(RoadOption.LEFT), int(RoadOption.RIGHT)])
    with torch.no_grad():
        out = m(x, cmd, torch.full((3,), 7.0))
        steer = m.output_to_steer(out, wheelbase=L, max_steer_angle=MAX_ANGLE, speed=torch.full((3,), 7.0))
    assert tuple(out.shape) == (3, 4, 2) and torch.isfinite(out).all()
    assert tuple(steer.shape) == (3,) and torch.all(steer.abs() <= 1.0)
    if not predict_x:  # x rebuilt from the arc lengths: about d_k for small offsets
        assert torch.allclose(out[..., 0], torch.tensor([2.0, 4.0, 6.0, 8.0]).expand(3, 4), atol=0.5)


def test_branched_path_head_selects_the_commands_head():
    preset = load_model_preset("dave2_path")
    assert preset.architecture == "dave2_branched" and preset.output.path_distances == D
    torch.manual_seed(0)
    m = build_policy(preset).eval()
    with torch.no_grad():
        for i, h in enumerate(m.heads):          # head i predicts a constant lateral offset of i metres
            h[-1].weight.zero_()
            h[-1].bias.fill_(float(i))
        x = torch.rand((4, *preset.preprocessing.shape)) * 255
        cmd = torch.tensor([int(c) for c in (RoadOption.LANEFOLLOW, RoadOption.LEFT, RoadOption.RIGHT,
                                             RoadOption.STRAIGHT)])
        out = m(x, cmd)
    assert torch.allclose(out[..., 1], torch.arange(4.0)[:, None].expand(4, 10))
    assert torch.allclose(out[..., 0], torch.tensor(D).expand(4, 10))      # parallel to the heading: x = d


def test_lateral_only_reconstruction_straight_and_arc():
    d = torch.tensor(D, dtype=torch.float64)
    # straight route, the car 1 m right of it and yawed 0.2 rad right: exact
    pose = np.array([[0.0, 1.0, 0.2]])
    xy = np.stack([np.arange(-5, 30.0), np.zeros(35)], 1)
    lab = route_path_labels(xy, xy[:, 0] - xy[0, 0], np.zeros(35), pose, [0.0 - xy[0, 0]], D)[0]
    rebuilt = lateral_to_points(torch.from_numpy(lab[:, 1])[None], d)[0].numpy()
    assert np.allclose(rebuilt, lab, atol=1e-9)
    # arc of radius 10 m turning right, the car on it: within about 1 cm (the chords)
    r = 10.0
    y = torch.tensor([r * (1 - math.cos(v / r)) for v in D], dtype=torch.float64)
    pts = lateral_to_points(y[None], d)[0].numpy()
    truth = np.array([[r * math.sin(v / r), r * (1 - math.cos(v / r))] for v in D])
    assert np.abs(pts - truth).max() < 0.011


def test_path_point_at_interpolates_and_extrapolates():
    pts = np.array([[1.0, 0.0], [2.0, 0.5], [3.0, 1.5]])
    dist = (1.0, 2.0, 3.0)
    assert np.allclose(path_point_at(pts, dist, 1.5), [1.5, 0.25])
    assert np.allclose(path_point_at(pts, dist, 4.0), [4.0, 2.5])     # along the last segment
    assert np.allclose(path_point_at(pts, dist, 0.5), [0.5, -0.25])   # back along the first
    t = path_point_at(torch.tensor(pts)[None].repeat(3, 1, 1), torch.tensor(dist, dtype=torch.float64),
                      torch.tensor([1.5, 4.0, 0.5], dtype=torch.float64))
    assert np.allclose(t.numpy(), [[1.5, 0.25], [4.0, 2.5], [0.5, -0.25]])


def test_batch_and_scalar_pursuit_agree_with_the_controls_pure_pursuit():
    pursuit = PursuitParams.from_expert(ExpertConfig())
    assert pursuit == PursuitParams()                    # the defaults are the default expert preset's
    rng = np.random.default_rng(0)
    pts = np.stack([np.asarray(D), np.cumsum(rng.normal(0, 0.2, 10))], 1)
    for v in (0.0, 5.0, 12.0, 60.0):
        ld = lookahead_distance(v, pursuit)
        assert math.isclose(ld, min(3.5 + 0.45 * v, 20.0))
        tx, ty = path_point_at(pts, D, ld)
        expected = curvature_to_steer(pure_pursuit_curvature(-L / 2, 0.0, 0.0, tx, ty), L, MAX_ANGLE)
        s = path_steer(pts, D, v, wheelbase=L, max_steer_angle=MAX_ANGLE, pursuit=pursuit)
        assert math.isclose(s, expected, rel_tol=1e-9, abs_tol=1e-12)
        sb, _ = path_steer_batch(torch.tensor(pts)[None], D, torch.tensor([v], dtype=torch.float64), L, MAX_ANGLE,
                                 pursuit)
        assert math.isclose(float(sb[0]), s, rel_tol=1e-6, abs_tol=1e-9)


# ---------------------------------------------------------------- the driver

class _FixedPath(nn.Module):
    """A stand-in path network whose prediction is set from outside (for closed loops)."""

    output_kind = "path"
    uses_command = False
    uses_speed = False

    def __init__(self) -> None:
        super().__init__()
        self.path = torch.zeros(10, 2)

    def forward(self, image, command=None, speed=None):
        return self.path[None].to(image.dtype).expand(image.shape[0], -1, -1)


def _info(preset):
    return CheckpointInfo(path=None, architecture=preset.architecture, preset=preset,
                          vehicle=VehicleParams(L, MAX_ANGLE), cameras=tuple(RIG))


def _arc_labels(radius: float) -> np.ndarray:
    """(10, 2) path labels on an arc of signed radius (+ = right) for a car in steady
    state on it: the rear axle on the arc, the heading along it (the pose is the centre,
    L/2 ahead)."""
    r = abs(radius)
    sign = 1.0 if radius > 0 else -1.0
    s = np.arange(0, 60.0, 0.05)
    th = s / r
    xy = np.stack([r * np.sin(th), sign * r * (1 - np.cos(th))], 1)
    yaw = sign * th
    rear, h = xy[200], yaw[200]
    pose = np.array([rear[0] + L / 2 * math.cos(h), rear[1] + L / 2 * math.sin(h), h])
    proj = project_onto_polyline(xy, s, pose[0], pose[1], pose[2])
    return route_path_labels(xy, s, yaw, pose[None], [proj.s], D)[0]


def test_policy_driver_follows_the_predicted_path_straight_and_arc():
    preset = load_model_preset("dave2_path")
    torch.manual_seed(0)
    m = build_policy(preset)
    cfg = dataclasses.replace(ExpertConfig(), min_lookahead=4.0, lookahead_time=0.5, max_lookahead=15.0)
    drv = PolicyDriver((m, _info(preset)), vehicle=VehicleParams(L, MAX_ANGLE), expert_config=cfg)
    assert drv.path_distances == D and drv.pursuit.min_lookahead == 4.0
    for offsets, label in ((np.full(10, 0.8), "straight, 0.8 m right"),
                           (_arc_labels(20.0)[:, 1], "arc R = 20 m, right"),
                           (_arc_labels(-30.0)[:, 1], "arc R = 30 m, left")):
        with torch.no_grad():
            m.heads[0][-1].weight.zero_()
            m.heads[0][-1].bias.copy_(torch.tensor(offsets, dtype=torch.float32))
        step = _step(speed=6.0)
        drv.reset(step)
        steer = drv.act(step).steer
        pts = drv.last_path
        assert pts.shape == (10, 2) and np.allclose(pts[:, 1], offsets, atol=1e-6), label
        ld = 4.0 + 0.5 * 6.0
        tx, ty = path_point_at(pts, D, ld)
        expected = curvature_to_steer(pure_pursuit_curvature(-L / 2, 0.0, 0.0, tx, ty), L, MAX_ANGLE)
        assert math.isclose(steer, expected, rel_tol=1e-5), label
        assert math.isclose(drv.predict_steer(step.observation), steer, rel_tol=1e-6)
        if "straight" in label:   # a path to the right: steer right, 2 y / (x'^2 + y^2)
            assert math.isclose(tx, ld, abs_tol=1e-5)
            assert math.isclose(steer, curvature_to_steer(2 * 0.8 / ((ld + L / 2) ** 2 + 0.64), L, MAX_ANGLE),
                                rel_tol=1e-4)
        else:                     # in steady state on an arc of radius R pure pursuit asks for 1/R
            r = 20.0 if "20" in label else -30.0
            k = math.tan(steer * MAX_ANGLE) / L
            assert abs(k - 1 / r) < 0.03 * abs(1 / r), (label, k)


@pytest.mark.parametrize("radius", [math.inf, 25.0])
def test_closed_loop_converges_onto_the_route(radius):
    """Kinematic bicycle driven by PolicyDriver, its path predicted perfectly from the
    true pose (the labels' own geometry): from 1.5 m off and 0.1 rad off heading, it
    converges onto the route."""
    n = 3000
    s = np.arange(n) * 0.1
    if math.isinf(radius):
        xy, yaw = np.stack([s, np.zeros(n)], 1), np.zeros(n)
    else:   # right-hand circle (CARLA: y right), centre (0, R)
        th = s / radius
        xy, yaw = np.stack([radius * np.sin(th), radius * (1 - np.cos(th))], 1), th
    preset = load_model_preset("dave2_path")
    net = _FixedPath()
    drv = PolicyDriver((net, _info(preset)), vehicle=VehicleParams(L, MAX_ANGLE), expert_config=ExpertConfig())
    x, y, h = 5.0, -1.5, 0.1            # left of the route, yawed right
    v, dt = 6.0, 0.05
    drv.reset(_step(v))
    devs = []
    for t in range(400):
        proj = project_onto_polyline(xy, s, x, y, h)
        net.path = torch.from_numpy(route_path_labels(xy, s, yaw, np.array([[x, y, h]]), [proj.s], D)[0]).float()
        steer = drv.act(_step(v, t=t * dt)).steer
        devs.append(abs(proj.lateral))
        # kinematic bicycle about the rear axle; the pose is the centre, L/2 ahead of it
        rx, ry = x - L / 2 * math.cos(h), y - L / 2 * math.sin(h)
        k = math.tan(steer * MAX_ANGLE) / L
        rx, ry, h = rx + v * dt * math.cos(h), ry + v * dt * math.sin(h), h + v * dt * k
        x, y = rx + L / 2 * math.cos(h), ry + L / 2 * math.sin(h)
    assert devs[0] > 1.4
    assert max(devs[-100:]) < 0.1, max(devs[-100:])


# ---------------------------------------------------------------- checkpoints

def test_path_checkpoint_round_trip_and_driver(tmp_path):
    preset = _path_preset("dave2_branched", path_distances=(1.0, 3.0, 6.0), predict_x=True, loss="smooth_l1")
    torch.manual_seed(1)
    m = build_policy(preset).eval()
    ck = save_checkpoint(tmp_path / "run" / "best", m, preset, vehicle=VehicleParams(L, MAX_ANGLE), cameras=RIG)
    cfg = json.loads((ck / "config.json").read_text())
    assert cfg["preset"]["output"] == {"kind": "path", "path_distances": [1.0, 3.0, 6.0], "predict_x": True,
                                       "loss": "smooth_l1", "smooth_l1_beta": 0.5}
    m2, info = load_checkpoint(tmp_path / "run")
    assert info.preset.output == preset.output and m2.output_kind == "path"
    x = torch.rand((2, *preset.preprocessing.shape)) * 255
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    drv = PolicyDriver.from_checkpoint(tmp_path / "run", vehicle=VehicleParams(L, MAX_ANGLE))
    s = drv.predict_steer(_step().observation)
    assert -1.0 <= s <= 1.0 and drv.last_path.shape == (3, 2)
    # an ensemble of path models drives on the mean path; a 1/r member does not mix in
    ens = EnsembleDriver.from_checkpoints([tmp_path / "run", tmp_path / "run"], vehicle=VehicleParams(L, MAX_ANGLE))
    assert math.isclose(ens.predict_steer(_step().observation), s, rel_tol=1e-5, abs_tol=1e-7)
    one_r = load_model_preset("dave2_command")
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "r" / "best", build_policy(one_r), one_r, vehicle=VehicleParams(L, MAX_ANGLE),
                    cameras=RIG)
    with pytest.raises(Exception, match="output"):
        EnsembleDriver.from_checkpoints([tmp_path / "run", tmp_path / "r"])


def test_native_presets_serialise_and_build_as_before():
    for name in ("dave2", "dave2_command", "alvinn"):
        p = load_model_preset(name)
        assert p.output == OutputConfig() and "output" not in p.to_dict()
        assert model_preset_from_dict(p.to_dict()).output == OutputConfig()
        cls = type(build_policy(p))
        torch.manual_seed(0)
        a = build_policy(p).state_dict()
        torch.manual_seed(0)
        b = cls(p.model, p.preprocessing.shape).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(Exception, match="path_distances"):
        OutputConfig(kind="path", path_distances=(2.0, 1.0))
    with pytest.raises(Exception, match="kind"):
        model_preset_from_dict({"architecture": "dave2", "output": {"kind": "waypoints"}})


def test_wide_path_preset_is_the_path_preset_on_the_wide_camera():
    wide, path, wide_1r = (load_model_preset(n) for n in ("dave2_path_wide", "dave2_path", "dave2_command_wide"))
    assert wide.output.is_path and wide.output == path.output
    # the crop of dave2_command_wide (22 sky rows of the 88x200 camera), the rest dave2_path
    assert wide.preprocessing == wide_1r.preprocessing
    assert wide.replace(name=path.name, source=path.source, preprocessing=path.preprocessing) == path
    m = build_policy(wide)
    x = torch.zeros(2, *wide.preprocessing.shape)
    assert m(x, command=torch.tensor([int(RoadOption.LEFT), int(RoadOption.RIGHT)])).shape == (2, len(path.output.path_distances), 2)

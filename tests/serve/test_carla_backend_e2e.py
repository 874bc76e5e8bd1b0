"""The CARLA backend (:class:`~drive_il.sim.carla.CarlaSimulator`, the real
``carla`` 0.9.16 client) end to end against ``drive-il serve``: the expert drives a
short route, an episode is recorded, a policy is evaluated."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("carla")

from drive_il.expert.expert import Expert
from drive_il.scenario import load_scenario
from drive_il.serve.process import free_port


@pytest.fixture(scope="module")
def scenario():
    # the default scenario (generated circuit, one 66x200 camera), a short route
    return load_scenario(None).replace(route_length=60.0, episode_seconds=12.0)


@pytest.fixture(scope="module")
def sim(server):
    from drive_il.sim.carla import CarlaSimulator
    s = CarlaSimulator(host="127.0.0.1", port=server.port,
                       tm_port=free_port(avoid={server.port, server.stream_port}), timeout=10.0)
    try:
        yield s
    finally:
        s.close()


def test_expert_drives_a_short_route(sim, scenario):
    from drive_il.rollout import Drivers, run_episode
    res = run_episode(sim, scenario, 0, Drivers(expert=Expert.for_scenario(scenario)))
    assert sim.backend == "carla"
    assert res.termination == "route_completed", res.summary
    assert res.summary["collisions"] == 0
    assert res.summary["route_completion"] > 95.0
    assert res.summary["lateral_deviation_max"] < 1.0  # lane keeping on the server's world
    # the route planned on the server's carla.Map (from get_map_data) is the embedded one
    from drive_il.sim.embedded.world import EmbeddedSimulator
    emb = EmbeddedSimulator(render=False)
    assert np.allclose(emb.reset(scenario, 0).world_state.route.xy, sim.route.xy, atol=1e-3)
    emb.close()


def test_record_an_episode(sim, scenario, tmp_path):
    from drive_il.data.storage import EpisodeReader, list_episodes
    from drive_il.rollout import CollectSpec, Drivers, collect
    res = collect(sim, scenario, tmp_path / "demo", CollectSpec(episodes=1, first_seed=1),
                  Drivers(expert=Expert.for_scenario(scenario)), progress=False)
    assert res.failed == [] and len(res.results) == 1 and res.frames > 50
    (path,) = list_episodes(tmp_path / "demo")
    with EpisodeReader(path) as ep:
        assert ep.meta.backend == "carla"
        n = len(ep.steps["expert"])
        assert n == res.frames
        frames = [ep.frame("center", i) for i in (0, n // 2, n - 1)]
        frame_no = np.asarray(ep.steps["frame"])
    assert all(f.shape == (66, 200, 3) and f.std() > 5.0 for f in frames)
    assert not np.array_equal(frames[0], frames[-1])  # the camera moved with the car
    assert (np.diff(frame_no) == 1).all()  # one server frame per control step, none lost


def test_evaluate_a_policy(sim, scenario, tmp_path):
    torch = pytest.importorskip("torch")
    from drive_il.evaluation.evaluate import evaluate
    from drive_il.policies.checkpoint import VehicleParams, save_checkpoint
    from drive_il.policies.driver import PolicyDriver
    from drive_il.policies.registry import build_policy, load_model_preset
    preset = load_model_preset("dave2")
    torch.manual_seed(0)
    model = build_policy(preset)  # untrained: a smoke test of the loop, not of the policy
    cam = scenario.cameras[0]
    rig = [{k: getattr(cam, k) for k in ("name", "width", "height", "fov_deg", "x", "y", "z",
                                         "pitch_deg", "yaw_deg")}]
    ckpt = save_checkpoint(tmp_path / "run" / "best", model, preset,
                           vehicle=VehicleParams(scenario.vehicle.wheelbase,
                                                 math.radians(scenario.vehicle.max_steer_deg)),
                           cameras=rig)
    learner = PolicyDriver.from_checkpoint(ckpt.parent, scenario=scenario)
    report = evaluate(sim, scenario.replace(episode_seconds=4.0), learner=learner,
                      expert=Expert.for_scenario(scenario), seeds=1, episodes=1, checkpoint="untrained")
    assert len(report.episodes) == 1
    ep = report.episodes[0]
    assert ep["termination"] in ("route_completed", "timeout")
    assert 0.0 <= report.aggregate["autonomy"] <= 100.0
    assert ep["distance"] > 5.0  # the car moved under the learner (with takeovers)

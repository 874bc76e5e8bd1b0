"""The non-architecture tables of a model preset (``models/*.toml``): ``[output]``
(:class:`OutputConfig`, what the network predicts), ``[augmentation]``
(:class:`AugmentConfig`) and ``[training]`` (:class:`TrainConfig`).

Plain frozen dataclasses (no torch): the registry, checkpoints and the trainer all read
them from here, so :mod:`drive_il.training` imports :mod:`drive_il.policies` and never
the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import validate_fields
from ..errors import FieldError
from ..types import STOP_REASON_NAMES

__all__ = ["DEFAULT_PATH_DISTANCES", "AugmentConfig", "OutputConfig", "TrainConfig"]

#: Arc lengths [m] of the path head's points by default: 1, 2, ..., 10 m.
DEFAULT_PATH_DISTANCES: tuple[float, ...] = tuple(float(d) for d in range(1, 11))


@dataclass(frozen=True)
class OutputConfig:
    """What the network predicts (the ``[output]`` table of a model preset; any
    architecture).

    * ``kind = "native"`` (the default; a preset without ``[output]``): the
      architecture's own output, DAVE-2's inverse turning radius 1/r or ALVINN's
      direction units.
    * ``kind = "path"``: the path ahead in the ego frame, K points indexed by **distance
      along the path** (``path_distances``, 1, 2, ..., 10 m by default), the learner then
      following it with the expert's pure pursuit
      (:mod:`drive_il.policies.path`). Space-indexed rather than timed waypoints (LBC,
      Chen et al. 2019, and TransFuser, Chitta et al. 2022, predict positions at fixed
      times, which mixes the path with the speed; Jaeger et al., "Hidden Biases of
      End-to-End Driving Models", ICCV 2023, predict the path at fixed distances and the
      speed apart): the speed stays with the cruise controller, as for 1/r.

    Frame of the points: the recorded pose of the car (its centre; CARLA axes: x
    forward, y right [m]). The network predicts the lateral offsets y_k [m]; with
    ``predict_x`` also x_k (as ``d_k`` + a residual [m]), else x_k is reconstructed
    from the arc lengths (:func:`drive_il.policies.path.lateral_to_points`).

    **Speed head** (``speed = true``, any ``kind``, any architecture): a target-speed
    output [m/s] next to the lateral one, one per command branch of a branched model,
    with the measured speed [m/s] as an input of that head (CILRS, Codevilla et al.,
    "Exploring the Limitations of Behavior Cloning for Autonomous Driving", ICCV 2019:
    a speed input and a speed-prediction branch; CILRS's branch predicts the measured
    speed as a regulariser, ours predicts the expert's target speed, the label recorded
    as ``target_speed`` in episode files; 0 where the expert stops). The unit predicts
    ``v / speed_scale``; the module returns v [m/s]. Training adds
    ``speed_loss_weight * mean |v_pred - v_label|`` [m/s] over the samples with a label
    (NaN labels are masked out) to the lateral loss
    (:class:`drive_il.training.losses.SpeedLoss`). The learner then tracks the predicted
    speed with the expert's longitudinal controller
    (:class:`drive_il.policies.driver.PolicyDriver`). With ``speed_measured_input =
    false`` the speed head sees the image features alone: CILRS names the "inertia
    problem" of the measured-speed input (a car standing still has mostly stood still in
    the expert's data, so a network that reads its own speed learns "stopped -> stay
    stopped" and never starts again; Codevilla et al., ICCV 2019, Sec. 5); without it the
    target speed can only come from what the camera shows (a light, a car ahead, a walker).

    Attributes:
        kind: ``"native"`` or ``"path"``.
        path_distances: arc lengths d_k [m] of the points, increasing (path only).
        predict_x: predict the forward coordinates too (2K outputs instead of K).
        loss: ``"l1"`` (TransFuser's and LBC's waypoint loss) or ``"smooth_l1"``
            (Girshick, Fast R-CNN 2015: quadratic below ``smooth_l1_beta``) on the
            points [m].
        smooth_l1_beta: the smooth-L1 transition [m].
        speed: add the speed head (target speed [m/s], measured speed as input).
        speed_measured_input: the speed head takes the measured speed as an input (CILRS);
            false: image features only (no inertia from the car's own speed).
        speed_loss_weight: weight w of the speed head's L1 loss [per m/s] (0.1: an error
            of 1 m/s weighs as a 0.1 m path error; the lateral losses are of order 0.05-0.5).
        speed_loss: ``"l1"`` (the head predicts the median of the expert's target speed
            given its inputs) or ``"quantile"``: the pinball loss of quantile regression
            (Koenker & Bassett, Econometrica 1978) at ``speed_quantile`` tau, scaled by 2
            so that tau = 0.5 is the L1 loss: ``2 max(tau u, (tau - 1) u)``, u = label -
            prediction. The head then predicts the tau-quantile: where one frame is
            followed by a stop in some episodes and by a start in others (a queue whose
            head may or may not have moved, a car ahead that may or may not be slowing),
            a tau below 0.5 predicts the slower one unless the faster one is likelier
            than 1 - tau.
        speed_quantile: tau of ``speed_loss = "quantile"``, in (0, 1); with ``"l1"`` it
            must stay 0.5 (the L1's tau), so that a tau set without the loss is an error,
            not ignored.
        speed_scale: the speed unit predicts ``v / speed_scale``; also the
            normalisation of the measured-speed input [m/s].
        obstacle_gap: add the **obstacle-gap head** (needs ``speed``): per command branch,
            the gap [m] from the front bumper along the route to what the expert slows
            for (a vehicle's rear, a walker, a red or yellow light's stop line; the
            episode files' ``steps/obstacle`` gap, schema version 4), ``gap_range`` where
            nothing slows it. Trained with ``gap_loss_weight * mean |g_pred - g_label|``
            on labels clipped to [0, gap_range]. The driver then caps the speed head's
            target at the stopped-obstacle braking curve of the predicted gap,
            ``sqrt(2 gap_deceleration max(0, g - gap_stop_distance))``
            (:func:`drive_il.policies.speed.gap_speed_cap`): a learner that sees the car
            ahead 7 m away asks for at most 2 m/s and for 0 at 6 m, however its speed
            head reads the frame. A predicted *affordance* (the
            distance to the vehicle ahead, the light's state) that a fixed rule turns into
            a speed is the Conditional Affordance Learning approach (Sauer, Savinov,
            Geiger, "Conditional Affordance Learning for Driving in Urban Environments",
            CoRL 2018); here it only caps the learned speed.
        gap_range: the gap head's range [m]: labels beyond it (and +inf, nothing ahead)
            train as ``gap_range``; the unit predicts ``g / gap_range``.
        gap_loss_weight: weight of the gap head's L1 loss [per m].
        gap_stop_distance: the predicted gap [m] at or below which the cap is 0. The
            expert stands 4-4.8 m back (``experts/urban.toml``: ``stop_gap`` and
            ``stop_line_margin``, 4 m), but a learner's predicted gap there reads higher
            in towns it has not seen (median 4.6 m on held-out Town01 routes, 6.1 m in
            held-out procedural towns): 6 m (README, "A gap head").
        gap_deceleration: the cap's braking deceleration [m/s^2] (the expert's
            ``comfort_decel``, 2 m/s^2).
        gap_lights: the gap labels include the stop lines of red and yellow lights
            (default). False: the frames where the expert slows for a light carry no gap
            label (unknown, masked out of the loss and of the offline figures), so the gap
            head learns vehicles and walkers only and the speed head alone stops for
            lights: the cap then cannot hold the car at a light whose lamp the network
            does not read (README, "A gap head").
        stop_reason_head: add an auxiliary **stop-reason head** (needs ``speed``): a
            classifier on the shared image features (DAVE-2 FC 100/50/10; ALVINN: one
            linear layer on the hidden units) of what the expert slows for, the episode
            files' ``steps/stop_reason`` (:data:`~drive_il.types.STOP_REASONS`: none, red
            light, yellow light, walker, vehicle; schema version 3), trained with
            ``stop_reason_loss_weight`` x cross-entropy [nats] over the frames whose reason
            is known. It only shapes the features the speed head reads (an auxiliary
            task: Ishihara et al., "Multi-task Learning with Attention for End-to-end
            Autonomous Driving", CVPRW 2021, add traffic-light classification to CIL for
            that); the driver does not use its output.
        stop_reason_loss_weight: weight of the stop-reason head's cross-entropy [per nat].
    """

    kind: str = field(default="native", metadata={"choices": ("native", "path")})
    path_distances: tuple[float, ...] = field(default=DEFAULT_PATH_DISTANCES, metadata={"range": (0.1, 200.0)})
    predict_x: bool = False
    loss: str = field(default="l1", metadata={"choices": ("l1", "smooth_l1")})
    smooth_l1_beta: float = field(default=0.5, metadata={"range": (1e-4, 10.0)})
    speed: bool = False
    speed_measured_input: bool = True
    speed_loss_weight: float = field(default=0.1, metadata={"range": (0.0, 100.0)})
    speed_loss: str = field(default="l1", metadata={"choices": ("l1", "quantile")})
    speed_quantile: float = field(default=0.5, metadata={"range": (0.01, 0.99)})
    speed_scale: float = field(default=10.0, metadata={"range": (0.1, 100.0)})
    obstacle_gap: bool = False
    gap_range: float = field(default=30.0, metadata={"range": (1.0, 500.0)})
    gap_loss_weight: float = field(default=0.05, metadata={"range": (0.0, 100.0)})
    gap_stop_distance: float = field(default=6.0, metadata={"range": (0.0, 50.0)})
    gap_deceleration: float = field(default=2.0, metadata={"range": (0.1, 20.0)})
    gap_lights: bool = True
    stop_reason_head: bool = False
    stop_reason_loss_weight: float = field(default=0.1, metadata={"range": (0.0, 100.0)})

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.stop_reason_head and not self.speed:
            raise FieldError("OutputConfig", "stop_reason_head",
                             "the stop-reason head trains next to the speed head: set speed = true too")
        if self.obstacle_gap and not self.speed:
            raise FieldError("OutputConfig", "obstacle_gap",
                             "the obstacle-gap head caps the speed head's target: set speed = true too")
        if self.obstacle_gap and self.gap_stop_distance >= self.gap_range:
            raise FieldError("OutputConfig", "gap_stop_distance",
                             f"expected less than gap_range ({self.gap_range:g} m), got {self.gap_stop_distance:g}")
        d = tuple(float(v) for v in self.path_distances)
        if not 1 <= len(d) <= 64:
            raise FieldError("OutputConfig", "path_distances", f"expected 1 to 64 distances, got {len(d)}")
        if any(b <= a for a, b in zip(d, d[1:])):
            raise FieldError("OutputConfig", "path_distances", f"expected increasing distances, got {list(d)}")
        if self.speed_loss != "quantile" and self.speed_quantile != 0.5:
            raise FieldError("OutputConfig", "speed_quantile",
                             f"expected 0.5 with speed_loss = {self.speed_loss!r} (set speed_loss = \"quantile\" "
                             f"to train another quantile), got {self.speed_quantile}")
        object.__setattr__(self, "path_distances", d)

    @property
    def is_path(self) -> bool:
        """The path head is on."""
        return self.kind == "path"

    @property
    def num_points(self) -> int:
        """K, the number of path points."""
        return len(self.path_distances)

    @property
    def num_outputs(self) -> int:
        """Output units of the path head: K (lateral only) or 2K (with x)."""
        return len(self.path_distances) * (2 if self.predict_x else 1)


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (the ``[augmentation]`` table of a model preset; applied by
    :class:`drive_il.training.augment.SampleTransform`).

    Attributes:
        side_cameras: train on every camera of the rig listed in ``cameras`` (or all),
            with the recovery correction of the camera's mount offset and yaw.
        cameras: cameras used for training (empty = every camera in the data).
        recovery_seconds: T of the recovery label [s] (DAVE-2: 2 s).
        min_recovery_distance: d_min [m], the look-ahead at low speed.
        brightness_prob: probability of a brightness change.
        brightness_range: factor drawn uniformly in [1 - range, 1 + range].
        shadow_prob: probability of a random shadow.
        shadow_strength: (lo, hi) darkening factor range of a shadow.
        viewpoint_prob: probability of a viewpoint shift/rotation of a frame.
        viewpoint_shift_std: std of the lateral shift [m] (clipped at 2.5 std).
        viewpoint_yaw_std_deg: std of the yaw rotation [deg] (clipped at 2.5 std).
        flip_prob: probability of a horizontal mirror of the frame, with the labels
            mirrored (steer, 1/r and the path's lateral offsets negated; LEFT and RIGHT,
            CHANGELANELEFT and CHANGELANERIGHT swapped; speed, gap and stop reason
            unchanged). A mirrored frame shows left-hand traffic: every turn of the data
            also trains the opposite command's branch, at the other side's radius, and
            the learner learns the left lane as a lane to drive in (on Town02 it then
            drove into oncoming cars; README, "A horizontal mirror"): 0 in every shipped
            preset.
    """

    side_cameras: bool = True
    cameras: tuple[str, ...] = ()
    recovery_seconds: float = field(default=2.0, metadata={"range": (0.1, 20.0)})
    min_recovery_distance: float = field(default=4.0, metadata={"range": (0.5, 100.0)})
    brightness_prob: float = field(default=0.5, metadata={"range": (0.0, 1.0)})
    brightness_range: float = field(default=0.3, metadata={"range": (0.0, 0.95)})
    shadow_prob: float = field(default=0.3, metadata={"range": (0.0, 1.0)})
    shadow_strength: tuple[float, float] = (0.4, 0.8)
    viewpoint_prob: float = field(default=0.0, metadata={"range": (0.0, 1.0)})
    viewpoint_shift_std: float = field(default=0.4, metadata={"range": (0.0, 5.0)})
    viewpoint_yaw_std_deg: float = field(default=2.0, metadata={"range": (0.0, 45.0)})
    flip_prob: float = field(default=0.0, metadata={"range": (0.0, 1.0)})

    def __post_init__(self) -> None:
        validate_fields(self)
        lo, hi = self.shadow_strength
        if not (0.0 <= lo <= hi <= 1.0):
            raise FieldError("AugmentConfig", "shadow_strength",
                             f"expected 0 <= lo <= hi <= 1, got {self.shadow_strength}")


@dataclass(frozen=True)
class TrainConfig:
    """Behaviour-cloning hyper-parameters (the ``[training]`` table).

    Attributes:
        batch_size: samples per step.
        epochs: passes over the training split.
        lr: Adam learning rate.
        weight_decay: AdamW decoupled weight decay.
        lr_schedule: ``"cosine"`` (to 0 over the run) or ``"constant"``.
        grad_clip: max gradient norm (0 = off).
        balance_steering: draw training samples with weights inversely proportional to
            the frequency of their steering label (DAVE-2 over-sampled curves).
        balance_power: exponent p of the steering weights, ``count ** -p`` (1 = full
            inverse frequency, 0.5 = its square root: curves over-sampled less hard).
        balance_commands: draw training samples so that every navigation command
            present (LANEFOLLOW, LEFT, RIGHT, STRAIGHT, ...) carries the same total weight:
            each branch head of a command-conditioned model sees as many samples, and
            junction turns are no longer a few per cent of the batches. Combines with
            ``balance_steering`` (the weights multiply).
        balance_standing: draw training samples so that, among the frames where the car
            stands (measured speed < :data:`~drive_il.data.tools.STANDING_SPEED`),
            those whose speed label says go (>= :data:`~drive_il.data.tools.GO_SPEED`:
            the expert starts off) carry the same total weight as those that say stop
            (or creep): a speed head learns to start at a green light from the few frames
            where the expert did (0.7 % of our NoCrash training frames, against 28 %
            standing for a light, a walker or a queue; the data side of CILRS's inertia
            problem, Codevilla et al., ICCV 2019). Moving frames keep weight 1; combines
            with the other balances (the weights multiply).
        standing_go_share: with ``balance_standing``, the share of the standing frames'
            total weight that the start-off frames carry (0.5: as much as stop and creep).
            A quantile speed head (``[output] speed_loss = "quantile"`` at tau) learns the
            tau-quantile of the labels of frames it cannot tell apart; with equal shares,
            where the camera does not clearly separate start-off from stop, that quantile
            is "stop" for tau < 0.5. ``1 - tau`` (0.75 for tau = 0.25) gives the stop
            frames the weighted share tau: the head then sits at the same balance between
            stop and go as an L1 head (tau = 0.5) on equal shares, for standing frames
            only (README, "A conservative speed head"). In (0.05, 0.95).
        balance_standing_reasons: with ``balance_standing``, the expert's stop reasons
            (:data:`~drive_il.types.STOP_REASON_NAMES`; "none" for a stop it did not
            name, e.g. the episode's start) whose standing runs are balanced; the
            standing frames of the other runs keep weight 1, as moving frames. Empty:
            every run (as before stop reasons were recorded). A run's reason is the last
            one the expert recorded in it, so the start-off frame that ends a wait at a
            red light counts as red_light. Lights change colour, so the camera tells a
            start-off frame from a stop frame there; behind a vehicle or a walker one
            frame often cannot tell whether it has moved off, and weighing up those
            start-off frames teaches a head to go behind standing cars (README, "Which
            waits to balance"). Needs episodes with stop reasons (schema 3).
        val_fraction: share of *episodes* held out for validation.
        seed: default seed (``--seed`` overrides).
        num_workers: DataLoader workers (0 = in the training process; on 2 cores the
            input pipeline is far cheaper than the model, see ``drive-il bench train``).
        threads: torch intra-op threads (0 = torch's default).
        image_log_every: log frames with steering drawn every N epochs (0 = never).
        images_logged: frames per image grid.
    """

    batch_size: int = field(default=64, metadata={"range": (1, 65536)})
    epochs: int = field(default=10, metadata={"range": (1, 100_000)})
    lr: float = field(default=1e-3, metadata={"range": (1e-8, 10.0)})
    weight_decay: float = field(default=0.0, metadata={"range": (0.0, 1.0)})
    lr_schedule: str = field(default="cosine", metadata={"choices": ("cosine", "constant")})
    grad_clip: float = field(default=0.0, metadata={"range": (0.0, 1e6)})
    balance_steering: bool = False
    balance_power: float = field(default=1.0, metadata={"range": (0.0, 4.0)})
    balance_commands: bool = False
    balance_standing: bool = False
    standing_go_share: float = field(default=0.5, metadata={"range": (0.05, 0.95)})
    balance_standing_reasons: tuple[str, ...] = ()
    val_fraction: float = field(default=0.1, metadata={"range": (0.0, 0.9)})
    seed: int = field(default=0, metadata={"range": (0, 2**31 - 1)})
    num_workers: int = field(default=0, metadata={"range": (0, 64)})
    threads: int = field(default=0, metadata={"range": (0, 256)})
    image_log_every: int = field(default=1, metadata={"range": (0, 100_000)})
    images_logged: int = field(default=8, metadata={"range": (1, 64)})

    def __post_init__(self) -> None:
        validate_fields(self)
        for r in self.balance_standing_reasons:
            if r not in STOP_REASON_NAMES:
                raise FieldError("TrainConfig", "balance_standing_reasons",
                                 f"unknown stop reason {r!r}: expected some of {list(STOP_REASON_NAMES)}")

"""Visualisation and human input: the only package that imports pygame.

Modules (import them directly; nothing is imported here so that ``import drive_il.viz``
stays free of pygame):

* :mod:`~drive_il.viz.overlay`: :class:`Overlay`, the rollout observer that draws the
  camera, steering gauges, a bird's-eye lane panel, a lateral-deviation strip chart and a HUD;
  :func:`render_demo_screenshot` (``python -m drive_il.viz.overlay docs/overlay.png``).
* :mod:`~drive_il.viz.panels`: the pure drawing functions (data + surface -> pixels),
  in the spirit of HighwayEnv's ``VehicleGraphics.display(vehicle, surface)``.
* :mod:`~drive_il.viz.lanes`: lane boundaries and markings from a ``carla.Map``,
  cached per map (no pygame).
* :mod:`~drive_il.viz.history`: ring buffers and counters the panels read (no pygame).
* :mod:`~drive_il.viz.viewer`: ``drive-il view``, replay of an episode file.
* :mod:`~drive_il.viz.human`: :class:`HumanDriver` (keyboard, gamepad, wheel) and
  :class:`HumanGate` (human-gated DAgger, Kelly et al. 2019).
* :mod:`~drive_il.viz.calibration`: joystick/wheel calibration files
  (``drive-il calibrate``).
* :mod:`~drive_il.viz.recording`: PNG frames, GIF, TensorBoard images.
* :mod:`~drive_il.viz.events`: one reader of pygame's event queue for all consumers.
* :mod:`~drive_il.viz.demo`: a tiny self-contained step source for tests, the bench
  and the screenshot.

Everything runs headless with ``SDL_VIDEODRIVER=dummy``.
"""

import os as _os

# pygame prints a greeting on stdout at import unless told not to; commands print results
# there (set before any submodule imports pygame).
_os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

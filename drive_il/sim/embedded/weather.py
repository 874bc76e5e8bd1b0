"""Weather and lighting presets named as CARLA's ``carla.WeatherParameters``.

Each preset carries two things:

* the numbers CARLA itself uses for the preset (cloudiness, precipitation,
  precipitation_deposits, wind_intensity, sun azimuth/altitude [deg], fog density,
  fog distance, fog falloff, wetness; copied from the ``carla==0.9.16`` client's
  ``carla.WeatherParameters.<Preset>``, checked against it in the tests), which the
  CARLA backend passes to ``world.set_weather`` (:meth:`WeatherLook.to_carla`);
* a :class:`WeatherLook`: how the embedded camera renders them. The look is derived
  from the CARLA numbers by simple, documented rules (no physics): the sun's altitude
  sets the light's level and colour (warm and low at sunset), cloudiness dims and
  desaturates the light and greys the sky, deposits (puddles, wet asphalt) darken the
  ground and add a sky sheen at grazing angles, fog and precipitation raise the haze
  extinction coefficient, precipitation draws rain streaks.

The grading applied to the ground is affine per channel, ``out = in * gain + bias``
(brightness, colour and contrast in one), followed by distance haze
``out = out * (1 - a) + haze * a`` with ``a = 1 - exp(-k d)`` (Koschmieder's law; ``d``
the distance [m], ``k`` the extinction coefficient [1/m]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CARLA_WEATHER", "WeatherLook", "preset_names"]

#: ``carla.WeatherParameters`` presets of the carla 0.9.16 client:
#: (cloudiness, precipitation, precipitation_deposits, wind_intensity,
#:  sun_azimuth_angle [deg], sun_altitude_angle [deg], fog_density, fog_distance,
#:  fog_falloff, wetness)
CARLA_WEATHER: dict[str, tuple[float, ...]] = {
    "ClearNoon":       (5.0, 0.0, 0.0, 10.0, -1.0, 45.0, 2.0, 0.75, 0.1, 0.0),
    "CloudyNoon":      (60.0, 0.0, 0.0, 10.0, -1.0, 45.0, 3.0, 0.75, 0.1, 0.0),
    "WetNoon":         (5.0, 0.0, 50.0, 10.0, -1.0, 45.0, 3.0, 0.75, 0.1, 0.0),
    "WetCloudyNoon":   (60.0, 0.0, 50.0, 10.0, -1.0, 45.0, 3.0, 0.75, 0.1, 0.0),
    "MidRainyNoon":    (60.0, 60.0, 60.0, 60.0, -1.0, 45.0, 3.0, 0.75, 0.1, 0.0),
    "HardRainNoon":    (100.0, 100.0, 90.0, 100.0, -1.0, 45.0, 7.0, 0.75, 0.1, 0.0),
    "SoftRainNoon":    (20.0, 30.0, 50.0, 30.0, -1.0, 45.0, 3.0, 0.75, 0.1, 0.0),
    "ClearSunset":     (5.0, 0.0, 0.0, 10.0, -1.0, 15.0, 2.0, 0.75, 0.1, 0.0),
    "CloudySunset":    (60.0, 0.0, 0.0, 10.0, -1.0, 15.0, 3.0, 0.75, 0.1, 0.0),
    "WetSunset":       (5.0, 0.0, 50.0, 10.0, -1.0, 15.0, 2.0, 0.75, 0.1, 0.0),
    "WetCloudySunset": (60.0, 0.0, 50.0, 10.0, -1.0, 15.0, 2.0, 0.75, 0.1, 0.0),
    "MidRainSunset":   (60.0, 60.0, 60.0, 60.0, -1.0, 15.0, 3.0, 0.75, 0.1, 0.0),
    "HardRainSunset":  (100.0, 100.0, 90.0, 100.0, -1.0, 15.0, 7.0, 0.75, 0.1, 0.0),
    "SoftRainSunset":  (20.0, 30.0, 50.0, 30.0, -1.0, 15.0, 2.0, 0.75, 0.1, 0.0),
}

_CARLA_FIELDS = ("cloudiness", "precipitation", "precipitation_deposits", "wind_intensity",
                 "sun_azimuth_angle", "sun_altitude_angle", "fog_density", "fog_distance",
                 "fog_falloff", "wetness")


def preset_names() -> tuple[str, ...]:
    """Names of the presets known here (CARLA's names)."""
    return tuple(CARLA_WEATHER)


def _mix(a, b, t: float) -> tuple[float, float, float]:
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


@dataclass(frozen=True)
class WeatherLook:
    """How the embedded camera renders a weather preset.

    Attributes:
        name: preset name (CARLA's).
        gain: per-channel RGB gain applied to the ground texture (light level and colour,
            times contrast).
        bias: per-channel RGB offset [0-255] (contrast pivot and ambient).
        haze_colour: RGB colour distant ground fades to.
        haze_k: haze extinction coefficient [1/m].
        sky_top, sky_horizon: RGB sky gradient from the image top to the horizon.
        sun_altitude, sun_azimuth: [deg] (vehicle shading; azimuth from +x towards +y).
        ambient: share of vehicle shading that does not depend on the sun [0, 1].
        wet: ground wetness [0, 1] (darker ground, sky sheen at grazing angles).
        rain: rain intensity [0, 1] (streaks drawn over the frame).
        carla: the ``carla.WeatherParameters`` numbers (field name -> value).
    """

    name: str
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    haze_colour: tuple[float, float, float] = (190.0, 205.0, 220.0)
    haze_k: float = 0.001
    sky_top: tuple[float, float, float] = (70.0, 120.0, 200.0)
    sky_horizon: tuple[float, float, float] = (185.0, 205.0, 225.0)
    sun_altitude: float = 45.0
    sun_azimuth: float = -1.0
    ambient: float = 0.45
    wet: float = 0.0
    rain: float = 0.0
    carla: dict[str, float] = field(default_factory=dict, compare=False)

    @classmethod
    def from_preset(cls, name: str) -> WeatherLook:
        """The look of a CARLA preset.

        Raises:
            ValueError: unknown preset (the message lists the known ones).
        """
        if name not in CARLA_WEATHER:
            raise ValueError(f"unknown weather preset {name!r} (known: {', '.join(CARLA_WEATHER)})")
        return cls.from_carla_numbers(name, **dict(zip(_CARLA_FIELDS, CARLA_WEATHER[name])))

    @classmethod
    def from_carla_numbers(cls, name: str, *, cloudiness: float, precipitation: float,
                           precipitation_deposits: float, wind_intensity: float = 10.0,
                           sun_azimuth_angle: float = -1.0, sun_altitude_angle: float = 45.0,
                           fog_density: float = 0.0, fog_distance: float = 0.75,
                           fog_falloff: float = 0.1, wetness: float = 0.0) -> WeatherLook:
        """Derive a look from ``carla.WeatherParameters`` numbers (0-100 scales, degrees)."""
        cloud = min(max(cloudiness / 100.0, 0.0), 1.0)
        rain = min(max(precipitation / 100.0, 0.0), 1.0)
        wet = min(max(max(precipitation_deposits, wetness) / 100.0, rain * 0.8), 1.0)
        alt = float(sun_altitude_angle)
        # light level: sin of the sun's altitude, softened (sky light), dimmed by clouds
        sun = max(math.sin(math.radians(max(alt, -5.0))), 0.0)
        level = (0.55 + 0.45 * min(sun / math.sin(math.radians(45.0)), 1.0)) * (1.0 - 0.33 * cloud - 0.12 * rain)
        # colour temperature: warm when the sun is low, neutral at noon, bluish-grey in rain
        warm = max(0.0, min(1.0, (35.0 - alt) / 25.0)) * (1.0 - 0.7 * cloud)
        tint = _mix((1.0, 1.0, 1.0), (1.10, 0.93, 0.74), warm)
        tint = _mix(tint, (0.96, 0.99, 1.04), 0.5 * cloud)
        contrast = 1.0 - 0.25 * cloud - 0.15 * rain
        pivot = 110.0
        wet_dark = 1.0 - 0.28 * wet
        gain = tuple(level * t * contrast * wet_dark for t in tint)
        bias = tuple(pivot * (1.0 - contrast) * level * t for t in tint)
        # sky
        sky_top = _mix((62.0, 116.0, 200.0), (120.0, 128.0, 140.0), cloud)
        sky_hor = _mix((182.0, 204.0, 228.0), (175.0, 178.0, 182.0), cloud)
        if warm > 0:
            sky_top = _mix(sky_top, (80.0, 92.0, 150.0), 0.6 * warm)
            sky_hor = _mix(sky_hor, (245.0, 170.0, 105.0), 0.85 * warm)
        dark = 1.0 - 0.35 * rain
        sky_top = tuple(c * dark * (0.8 + 0.2 * level) for c in sky_top)
        sky_hor = tuple(c * (1.0 - 0.2 * rain) * (0.85 + 0.15 * level) for c in sky_hor)
        haze = _mix(sky_hor, (150.0, 155.0, 160.0), 0.5 * rain)
        # extinction: clear air ~1e-3 /m (visibility ~4 km), fog and rain thicken it
        haze_k = 0.0008 + 0.0003 * fog_density + 0.012 * rain ** 1.5 + 0.002 * cloud
        return cls(
            name=name, gain=gain, bias=bias, haze_colour=haze, haze_k=haze_k,
            sky_top=sky_top, sky_horizon=sky_hor, sun_altitude=alt,
            sun_azimuth=float(sun_azimuth_angle), ambient=0.45 + 0.35 * cloud, wet=wet, rain=rain,
            carla=dict(zip(_CARLA_FIELDS, (cloudiness, precipitation, precipitation_deposits, wind_intensity,
                                           sun_azimuth_angle, sun_altitude_angle, fog_density, fog_distance,
                                           fog_falloff, wetness))),
        )

    def carla_parameters(self) -> dict[str, float]:
        """The ``carla.WeatherParameters`` keyword arguments of this preset."""
        if self.carla:
            return dict(self.carla)
        return dict(zip(_CARLA_FIELDS, CARLA_WEATHER[self.name]))

    def to_carla(self) -> Any:
        """A ``carla.WeatherParameters`` with this preset's numbers (imports carla)."""
        import carla

        return carla.WeatherParameters(**self.carla_parameters())

    def haze_transmission(self, distance):
        """The share of an object's own colour left at ``distance`` [m] (a float, or a
        numpy array elementwise): ``exp(-k d)`` (Koschmieder's law; module docstring),
        negative distances taken as 0, +inf gives 0."""
        if isinstance(distance, np.ndarray):
            return np.exp(-self.haze_k * np.maximum(distance, 0.0))
        return math.exp(-self.haze_k * max(distance, 0.0))

    def haze_alpha(self, distance):
        """Haze opacity at ``distance`` [m] (a float, or a numpy array elementwise):
        ``1 - exp(-k d)`` (:meth:`haze_transmission`); +inf gives 1."""
        return 1.0 - self.haze_transmission(distance)

    def wet_sheen(self, distance: float) -> float:
        """Share of the sky's horizon colour the wet ground reflects at ``distance`` [m]
        (Fresnel-like, growing towards grazing angles): ``0.35 wet (1 - exp(-d / 30 m))``;
        0 for a non-finite distance."""
        if not math.isfinite(distance):
            return 0.0
        return self.wet * 0.35 * (1.0 - math.exp(-distance / 30.0))

    def grade(self, rgb, distance: float) -> tuple[int, int, int]:
        """Grade an RGB colour seen at ``distance`` [m] as the ground is graded."""
        a = self.haze_alpha(distance)
        out = []
        for c, g, b, h in zip(rgb, self.gain, self.bias, self.haze_colour):
            v = (c * g + b) * (1.0 - a) + h * a
            out.append(int(min(max(round(v), 0), 255)))
        return tuple(out)  # type: ignore[return-value]

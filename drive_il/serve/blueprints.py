"""The served blueprint library: what ``world.get_blueprint_library()`` lists.

The vehicle blueprints (ids and dimensions of the production cars CARLA's blueprints
are named after), the RGB camera with CARLA's attribute set and defaults, and the
collision and lane-invasion sensors, as ``carla::rpc::ActorDefinition`` lists
(:func:`blueprint_definitions`); plus the lookups spawning needs
(:func:`vehicle_spec`, :func:`parse_color`).
"""

from __future__ import annotations

from . import encoding as E

__all__ = ["VEHICLE_BLUEPRINTS", "blueprint_definitions", "parse_color", "vehicle_spec"]

# (id, length, width, height, wheelbase [m], generation) -- overall dimensions of the
# production cars the CARLA blueprints are named after (manufacturers' data, rounded).
VEHICLE_BLUEPRINTS: tuple[tuple[str, float, float, float, float, int], ...] = (
    ("vehicle.tesla.model3", 4.69, 1.85, 1.44, 2.88, 2),
    ("vehicle.audi.a2", 3.83, 1.67, 1.55, 2.41, 1),
    ("vehicle.audi.tt", 4.18, 1.83, 1.36, 2.51, 1),
    ("vehicle.bmw.grandtourer", 4.56, 1.80, 1.61, 2.78, 1),
    ("vehicle.citroen.c3", 4.00, 1.75, 1.47, 2.54, 1),
    ("vehicle.dodge.charger_2020", 5.04, 1.91, 1.48, 3.05, 2),
    ("vehicle.ford.mustang", 4.79, 1.92, 1.38, 2.72, 1),
    ("vehicle.lincoln.mkz_2020", 4.93, 1.86, 1.48, 2.85, 2),
    ("vehicle.mercedes.coupe_2020", 4.84, 1.82, 1.43, 2.87, 2),
    ("vehicle.mini.cooper_s", 3.85, 1.73, 1.43, 2.50, 1),
    ("vehicle.nissan.micra", 3.83, 1.67, 1.52, 2.43, 1),
    ("vehicle.toyota.prius", 4.54, 1.76, 1.49, 2.70, 1),
)
_VEHICLES = {v[0]: v for v in VEHICLE_BLUEPRINTS}
_COLORS = ("255,255,255", "20,20,20", "160,30,30", "30,60,150", "120,120,125",
           "200,160,40", "40,110,60", "180,90,30")
_CAMERA_ATTRS_FLOAT = {
    "fov": "90", "sensor_tick": "0.0", "gamma": "2.2", "bloom_intensity": "0.675",
    "fstop": "1.4", "iso": "100", "lens_flare_intensity": "0.1", "motion_blur_intensity": "0.45",
    "motion_blur_max_distortion": "0.35", "motion_blur_min_object_screen_size": "0.1",
    "shutter_speed": "200", "lens_circle_falloff": "5.0", "lens_circle_multiplier": "0.0",
    "lens_k": "-1.0", "lens_kcube": "0.0", "lens_x_size": "0.08", "lens_y_size": "0.08",
    "chromatic_aberration_intensity": "0.0", "chromatic_aberration_offset": "0.0",
    "exposure_compensation": "0.0", "exposure_min_bright": "10.0", "exposure_max_bright": "12.0",
    "exposure_speed_up": "3.0", "exposure_speed_down": "1.0", "calibration_constant": "16.0",
    "focal_distance": "1000.0", "blur_amount": "1.0", "blur_radius": "0.0", "slope": "0.88",
    "toe": "0.55", "shoulder": "0.26", "black_clip": "0.0", "white_clip": "0.04",
    "temp": "6500.0", "tint": "0.0", "min_fstop": "1.2", "blade_count": "5",
}


def vehicle_spec(bp_id: str) -> tuple[str, float, float, float, float, int] | None:
    """The :data:`VEHICLE_BLUEPRINTS` row of a vehicle blueprint id (None: unknown)."""
    return _VEHICLES.get(bp_id)


def parse_color(text: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
    """An ``"R,G,B"`` attribute value as a clamped RGB triple (``default`` if malformed)."""
    try:
        r, g, b = (int(float(c)) for c in text.split(","))
        return (min(max(r, 0), 255), min(max(g, 0), 255), min(max(b, 0), 255))
    except ValueError:
        return default


def blueprint_definitions() -> list:
    """The blueprint library as ``ActorDefinition`` lists (uids 1, 2, ... in order)."""
    A = E.attribute_definition
    defs = []
    uid = 1
    for bp_id, _l, _w, _h, _wb, gen in VEHICLE_BLUEPRINTS:
        make = bp_id.split(".")[1]
        attrs = [
            A("role_name", E.ATTR_STRING, "autopilot"),
            A("color", E.ATTR_RGB, _COLORS[uid % len(_COLORS)], _COLORS),
            A("number_of_wheels", E.ATTR_INT, "4", ("4",), False),
            A("generation", E.ATTR_INT, str(gen), (), False),
            A("base_type", E.ATTR_STRING, "car", (), False),
            A("special_type", E.ATTR_STRING, "", (), False),
            A("object_type", E.ATTR_STRING, "", (), False),
            A("has_dynamic_doors", E.ATTR_BOOL, "false", (), False),
            A("has_lights", E.ATTR_BOOL, "true", (), False),
            A("sticky_control", E.ATTR_BOOL, "true"),
            A("terramechanics", E.ATTR_BOOL, "false"),
        ]
        defs.append(E.actor_definition(uid, bp_id, f"vehicle,{make},car", attrs))
        uid += 1
    cam = [A("role_name", E.ATTR_STRING, "front"),
           A("image_size_x", E.ATTR_INT, "800"), A("image_size_y", E.ATTR_INT, "600"),
           A("enable_postprocess_effects", E.ATTR_BOOL, "true"),
           A("exposure_mode", E.ATTR_STRING, "histogram", ("manual", "histogram"))]
    cam += [A(k, E.ATTR_FLOAT, v) for k, v in _CAMERA_ATTRS_FLOAT.items() if k != "blade_count"]
    cam.append(A("blade_count", E.ATTR_INT, "5"))
    defs.append(E.actor_definition(uid, "sensor.camera.rgb", "sensor,camera,rgb", cam))
    uid += 1
    defs.append(E.actor_definition(uid, "sensor.other.collision", "sensor,other,collision",
                                   [A("role_name", E.ATTR_STRING, "front")]))
    uid += 1
    defs.append(E.actor_definition(uid, "sensor.other.lane_invasion", "sensor,other,lane_invasion",
                                   [A("role_name", E.ATTR_STRING, "front")]))
    return defs

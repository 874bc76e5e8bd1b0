"""The served blueprint library: what ``world.get_blueprint_library()`` lists.

The vehicle blueprints of CARLA 0.9.16 (its ids, generations, base and special types,
number of wheels; dimensions of the production vehicles they are named after), the
pedestrian blueprints ``walker.pedestrian.0001`` ... and the ``controller.ai.walker``
(:func:`is_walker_blueprint`; spawned by the world, walked by the client's navigation),
the RGB camera with CARLA's attribute set and defaults,
and the collision and lane-invasion sensors, as ``carla::rpc::ActorDefinition`` lists
(:func:`blueprint_definitions`); plus the lookups spawning needs (:func:`vehicle_spec`,
:func:`parse_color`).

Tags are CARLA's: a vehicle's are ``vehicle``, its make and its model (``vehicle.tesla.model3``
-> ``vehicle, tesla, model3``), so ``filter("model3")`` and ``filter("tesla")`` find it.
"""

from __future__ import annotations

from . import encoding as E

__all__ = ["VEHICLE_BLUEPRINTS", "VEHICLE_KINDS", "WALKER_BLUEPRINTS", "blueprint_definitions",
           "is_walker_blueprint", "parse_color", "vehicle_spec"]

# (id, length, width, height, wheelbase [m], generation) -- CARLA 0.9.16's vehicle
# blueprints, with the overall dimensions of the production vehicles they are named after
# (manufacturers' data, rounded; for CARLA's own trucks, the size of the model).
VEHICLE_BLUEPRINTS: tuple[tuple[str, float, float, float, float, int], ...] = (
    # generation 1
    ("vehicle.audi.a2", 3.83, 1.67, 1.55, 2.41, 1),
    ("vehicle.audi.etron", 4.90, 1.94, 1.63, 2.93, 1),
    ("vehicle.audi.tt", 4.18, 1.83, 1.36, 2.51, 1),
    ("vehicle.bh.crossbike", 1.75, 0.60, 1.10, 1.10, 1),
    ("vehicle.bmw.grandtourer", 4.56, 1.80, 1.61, 2.78, 1),
    ("vehicle.carlamotors.carlacola", 5.90, 2.40, 3.00, 3.70, 1),
    ("vehicle.chevrolet.impala", 5.38, 2.03, 1.40, 3.02, 1),
    ("vehicle.citroen.c3", 4.00, 1.75, 1.47, 2.54, 1),
    ("vehicle.diamondback.century", 1.75, 0.60, 1.10, 1.05, 1),
    ("vehicle.dodge.charger_police", 5.04, 1.91, 1.48, 3.05, 1),
    ("vehicle.ford.mustang", 4.79, 1.92, 1.38, 2.72, 1),
    ("vehicle.gazelle.omafiets", 1.85, 0.65, 1.15, 1.15, 1),
    ("vehicle.harley-davidson.low_rider", 2.36, 0.90, 1.15, 1.60, 1),
    ("vehicle.jeep.wrangler_rubicon", 4.29, 1.88, 1.84, 2.46, 1),
    ("vehicle.kawasaki.ninja", 2.07, 0.75, 1.15, 1.40, 1),
    ("vehicle.lincoln.mkz_2017", 4.93, 1.86, 1.48, 2.85, 1),
    ("vehicle.mercedes.coupe", 4.70, 1.79, 1.42, 2.76, 1),
    ("vehicle.micro.microlino", 2.52, 1.47, 1.50, 1.60, 1),
    ("vehicle.mini.cooper_s", 3.85, 1.73, 1.43, 2.50, 1),
    ("vehicle.nissan.micra", 3.83, 1.67, 1.52, 2.43, 1),
    ("vehicle.nissan.patrol", 5.17, 1.99, 1.94, 3.08, 1),
    ("vehicle.seat.leon", 4.28, 1.82, 1.46, 2.64, 1),
    ("vehicle.tesla.model3", 4.69, 1.85, 1.44, 2.88, 1),
    ("vehicle.toyota.prius", 4.54, 1.76, 1.49, 2.70, 1),
    ("vehicle.vespa.zx125", 1.90, 0.70, 1.15, 1.35, 1),
    ("vehicle.volkswagen.t2", 4.50, 1.72, 1.94, 2.40, 1),
    ("vehicle.yamaha.yzf", 2.05, 0.72, 1.15, 1.38, 1),
    # generation 2
    ("vehicle.carlamotors.european_hgv", 7.92, 2.86, 3.78, 4.50, 2),
    ("vehicle.carlamotors.firetruck", 8.60, 2.50, 3.30, 4.80, 2),
    ("vehicle.dodge.charger_2020", 5.04, 1.91, 1.48, 3.05, 2),
    ("vehicle.dodge.charger_police_2020", 5.04, 1.91, 1.48, 3.05, 2),
    ("vehicle.ford.ambulance", 6.36, 2.35, 2.43, 3.90, 2),
    ("vehicle.ford.crown", 5.39, 1.98, 1.47, 2.91, 2),
    ("vehicle.lincoln.mkz_2020", 4.93, 1.86, 1.48, 2.85, 2),
    ("vehicle.mercedes.coupe_2020", 4.84, 1.82, 1.43, 2.87, 2),
    ("vehicle.mercedes.sprinter", 5.93, 2.02, 2.36, 3.66, 2),
    ("vehicle.mini.cooper_s_2021", 3.88, 1.73, 1.43, 2.50, 2),
    ("vehicle.mitsubishi.fusorosa", 10.50, 2.50, 3.20, 5.30, 2),
    ("vehicle.nissan.patrol_2021", 5.17, 1.99, 1.94, 3.08, 2),
    ("vehicle.tesla.cybertruck", 5.68, 2.20, 1.79, 3.81, 2),
    ("vehicle.volkswagen.t2_2021", 4.50, 1.72, 1.94, 2.40, 2),
)
#: {id: (base_type, special_type, number_of_wheels)} of the vehicles that are not plain
#: four-wheeled cars (those are ("car", "", 4)).
VEHICLE_KINDS: dict[str, tuple[str, str, int]] = {
    "vehicle.audi.etron": ("car", "electric", 4),
    "vehicle.bh.crossbike": ("bicycle", "", 2),
    "vehicle.carlamotors.carlacola": ("truck", "", 4),
    "vehicle.carlamotors.european_hgv": ("truck", "", 4),
    "vehicle.carlamotors.firetruck": ("truck", "emergency", 4),
    "vehicle.diamondback.century": ("bicycle", "", 2),
    "vehicle.dodge.charger_police": ("car", "emergency", 4),
    "vehicle.dodge.charger_police_2020": ("car", "emergency", 4),
    "vehicle.ford.ambulance": ("van", "emergency", 4),
    "vehicle.ford.crown": ("car", "taxi", 4),
    "vehicle.gazelle.omafiets": ("bicycle", "", 2),
    "vehicle.harley-davidson.low_rider": ("motorcycle", "", 2),
    "vehicle.kawasaki.ninja": ("motorcycle", "", 2),
    "vehicle.mercedes.sprinter": ("van", "", 4),
    "vehicle.micro.microlino": ("car", "electric", 4),
    "vehicle.mitsubishi.fusorosa": ("bus", "", 4),
    "vehicle.tesla.cybertruck": ("truck", "electric", 4),
    "vehicle.tesla.model3": ("car", "electric", 4),
    "vehicle.vespa.zx125": ("motorcycle", "", 2),
    "vehicle.volkswagen.t2": ("van", "", 4),
    "vehicle.volkswagen.t2_2021": ("van", "", 4),
    "vehicle.yamaha.yzf": ("motorcycle", "", 2),
}
#: The pedestrian blueprints (id, generation); the client's navigation walks them
#: (:mod:`drive_il.serve.navmesh`).
WALKER_BLUEPRINTS: tuple[tuple[str, int], ...] = tuple(
    (f"walker.pedestrian.{i:04d}", 1 if i <= 14 else 2) for i in range(1, 50))
_WALKER_CONTROLLER = "controller.ai.walker"
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


def is_walker_blueprint(bp_id: str) -> bool:
    """Whether ``bp_id`` is a pedestrian or the walker AI controller."""
    return bp_id.startswith("walker.") or bp_id == _WALKER_CONTROLLER


def parse_color(text: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
    """An ``"R,G,B"`` attribute value as a clamped RGB triple (``default`` if malformed)."""
    try:
        r, g, b = (int(float(c)) for c in text.split(","))
        return (min(max(r, 0), 255), min(max(g, 0), 255), min(max(b, 0), 255))
    except ValueError:
        return default


def _tags(bp_id: str) -> str:
    """CARLA's tags of a blueprint: the parts of its id (``vehicle.tesla.model3`` ->
    ``vehicle,tesla,model3``)."""
    return ",".join(bp_id.split("."))


def blueprint_definitions() -> list:
    """The blueprint library as ``ActorDefinition`` lists (uids 1, 2, ... in order)."""
    A = E.attribute_definition
    defs = []
    uid = 1
    for bp_id, _l, _w, _h, _wb, gen in VEHICLE_BLUEPRINTS:
        base, special, wheels = VEHICLE_KINDS.get(bp_id, ("car", "", 4))
        attrs = [
            A("role_name", E.ATTR_STRING, "autopilot"),
            A("color", E.ATTR_RGB, _COLORS[uid % len(_COLORS)], _COLORS),
            A("number_of_wheels", E.ATTR_INT, str(wheels), (str(wheels),), False),
            A("generation", E.ATTR_INT, str(gen), (), False),
            A("base_type", E.ATTR_STRING, base, (), False),
            A("special_type", E.ATTR_STRING, special, (), False),
            A("object_type", E.ATTR_STRING, "", (), False),
            A("has_dynamic_doors", E.ATTR_BOOL, "false", (), False),
            A("has_lights", E.ATTR_BOOL, "true", (), False),
            A("sticky_control", E.ATTR_BOOL, "true"),
            A("terramechanics", E.ATTR_BOOL, "false"),
        ]
        defs.append(E.actor_definition(uid, bp_id, _tags(bp_id), attrs))
        uid += 1
    for bp_id, gen in WALKER_BLUEPRINTS:
        n = int(bp_id.rsplit(".", 1)[1])
        attrs = [
            A("role_name", E.ATTR_STRING, "pedestrian"),
            A("is_invincible", E.ATTR_BOOL, "true"),
            A("speed", E.ATTR_FLOAT, "1.4", ("0.0", "1.4", "2.8")),
            A("generation", E.ATTR_INT, str(gen), (), False),
            A("gender", E.ATTR_STRING, "female" if n % 2 else "male", (), False),
            A("age", E.ATTR_STRING, "child" if n % 10 == 9 else "adult", (), False),
            A("can_use_wheelchair", E.ATTR_BOOL, "false", (), False),
            A("use_wheelchair", E.ATTR_BOOL, "false"),
        ]
        defs.append(E.actor_definition(uid, bp_id, _tags(bp_id), attrs))
        uid += 1
    defs.append(E.actor_definition(uid, _WALKER_CONTROLLER, _tags(_WALKER_CONTROLLER),
                                   [A("role_name", E.ATTR_STRING, "")]))
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
    # GNSS, IMU, depth and semantic segmentation cameras, lidar (listed, refused): .sensors
    from .sensors import sensor_definitions
    defs += sensor_definitions(max(d[0] for d in defs) + 1, skip={d[1] for d in defs})
    return defs

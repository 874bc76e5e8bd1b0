import pytest

from drive_il.errors import ConfigError
from drive_il.scenario import SCENARIOS_DIR, Scenario, load_scenario


def test_default_scenario_loads():
    s = load_scenario(None)
    assert s.name == "default" and s.cameras[0].width == 200 and s.max_steps == round(s.episode_seconds / s.dt)
    t = s.test_scenario()
    assert t.seed == s.test.seed and t.town == s.town


def test_every_shipped_scenario_loads():
    for p in sorted(SCENARIOS_DIR.glob("*.toml")):
        assert isinstance(load_scenario(p), Scenario)


@pytest.mark.parametrize("text, fragment", [
    ('town = "circuit"\ntwon = "x"\n', "field 'twon': unknown key"),
    ('dt = 0.5\n', "field 'dt': expected a number in [0.001, 0.1], got 0.5"),
    ('weather = "Sunny"\n', "field 'weather': expected one of"),
    ('[[cameras]]\nname = "c"\nwidth = 0\n', "field 'cameras[0].width'"),
    ('[traffic]\nvehicles = -3\n', "field 'traffic.vehicles'"),
    ('[[cameras]]\nname = "c"\n[[cameras]]\nname = "c"\n', "camera names must be unique"),
    ('[pipeline]\nbeta = 1.5\n', "field 'pipeline.beta'"),
    ('[[routes]]\nstart = [1.0]\ngoal = [2.0, 3.0]\n', "field 'routes[0].start': expected an array of 2 values"),
])
def test_bad_scenarios(tmp_path, text, fragment):
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_scenario(p)
    assert str(p) in str(ei.value) and fragment in str(ei.value)


def test_missing_scenario_file(tmp_path):
    with pytest.raises(ConfigError, match="scenario file not found"):
        load_scenario(tmp_path / "nope.toml")

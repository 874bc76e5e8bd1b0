import pytest

from drive_il.errors import ConfigError
from drive_il.scenario import SCENARIOS_DIR, Scenario, load_scenario


def test_default_scenario_loads():
    s = load_scenario(None)
    assert s.name == "default" and s.cameras[0].width == 200 and s.max_steps == round(s.episode_seconds / s.dt)
    t = s.test_scenario()
    assert t.seed == s.test.seed and t.town == s.town


def test_every_shipped_scenario_loads():
    import tomllib

    from drive_il.scenario import scenario_from_dict
    for p in sorted(SCENARIOS_DIR.glob("*.toml")):
        sc = load_scenario(p)
        raw = tomllib.loads(p.read_text())
        assert sc.name == raw["name"] and sc.town == raw.get("town", Scenario.town), p
        assert sc.towns == tuple(raw.get("towns", ())), p
        assert sc.town != Scenario.town or sc.towns or "town" in raw, p   # names where it drives
        assert len(sc.cameras) == max(1, len(raw.get("cameras", [])))
        # the scenario round-trips through its dict (what episodes and run directories store)
        assert scenario_from_dict(sc.to_dict(), source=str(p)) == sc, p
        t = sc.test_scenario()
        assert t.seed == sc.test.seed, p
        if sc.test.towns:
            assert t.towns == sc.test.towns and t.town == sc.test.towns[0], p
        else:
            assert t.town == (sc.test.town or sc.town), p


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


PIPELINE_NEW_KEYS = """
[pipeline]
model = "alvinn"
dagger_rounds = 2
dagger_episodes = 1
mode = "gated"
gate_threshold = 0.5
eval_episodes = 2
intervention_threshold = 0.8
bc_matched = false
seed = 1000
max_train_frames = 5000
"""


def test_pipeline_table_with_the_former_cli_only_keys_round_trips(tmp_path):
    import tomllib

    from drive_il.config import from_dict, to_dict
    from drive_il.pipeline import PipelineConfig

    p = tmp_path / "s.toml"
    p.write_text(PIPELINE_NEW_KEYS)
    pl = load_scenario(p).pipeline
    assert pl == PipelineConfig(model="alvinn", dagger_rounds=2, dagger_episodes=1, mode="gated",
                                gate_threshold=0.5, eval_episodes=2, intervention_threshold=0.8,
                                bc_matched=False, seed=1000, max_train_frames=5000)
    assert from_dict(PipelineConfig, tomllib.loads(PIPELINE_NEW_KEYS)["pipeline"]) == pl
    assert from_dict(PipelineConfig, {k: v for k, v in to_dict(pl).items() if v is not None}) == pl
    s = load_scenario(p)
    assert load_scenario(None).replace(pipeline=s.pipeline).pipeline == pl


@pytest.mark.parametrize("key, value, flag, detail", [
    ("dagger_rounds", "0", "--dagger-rounds/--rounds", "expected an integer in [1, 100], got 0"),
    ("beta", "1.5", "--beta", "expected a number in [0.0, 1.0], got 1.5"),
    ("mode", '"bogus"', "--mode", "expected one of ['mixture', 'gated'], got 'bogus'"),
    ("intervention_threshold", "0.1", "--intervention-threshold/--threshold",
     "expected a number in [0.5, 50.0], got 0.1"),
])
def test_pipeline_error_is_the_same_from_toml_cli_and_python(tmp_path, key, value, flag, detail):
    import ast

    from drive_il.cli import build_parser
    from drive_il.commands.dagger import pipeline_config
    from drive_il.pipeline import PipelineConfig

    p = tmp_path / "s.toml"
    p.write_text(f"[pipeline]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as toml:
        load_scenario(p)
    args = build_parser().parse_args(["dagger", flag.split("/")[-1], value.strip('"')])
    with pytest.raises(ConfigError) as cli:
        pipeline_config(args, load_scenario(None))
    with pytest.raises(ConfigError) as py:
        PipelineConfig(**{key: ast.literal_eval(value)})
    assert str(toml.value) == f"{p}: field 'pipeline.{key}': {detail}"
    assert str(cli.value) == f"{flag}: field '{key}': {detail}"
    assert str(py.value) == f"PipelineConfig: field '{key}': {detail}"


def test_noise_config_lives_with_the_scenario():
    from drive_il.data import noise
    from drive_il.scenario import NoiseConfig
    assert noise.NoiseConfig is NoiseConfig and load_scenario(None).noise.episode_share == 0.0


# ---------------------------------------------------------------- issue 16: names, empty files
@pytest.mark.parametrize("name", ["../../../x", "a/b", ".hidden", "", "x" * 65, "tab\there", "ü"])
def test_unsafe_scenario_names_are_refused(tmp_path, name):
    p = tmp_path / "s.toml"
    p.write_text(f'name = "{name}"\ntown = "circuit"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert str(p) in msg and "field 'name'" in msg and "\n" not in msg
    with pytest.raises(ConfigError):
        Scenario(name=name)


@pytest.mark.parametrize("name", ["default", "town01_train_town02_test", "a.b-c_9", "x" * 64])
def test_safe_scenario_names_load_and_have_a_test_variant(name):
    sc = Scenario(name=name)
    assert sc.test_scenario().name == f"{name}-test"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\ufeff"])
def test_empty_scenario_file_is_refused(tmp_path, text):
    p = tmp_path / "empty.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="empty scenario file; copy scenarios/default.toml") as e:
        load_scenario(p)
    assert str(e.value).startswith(f"{p}: ")


def test_scenario_file_with_a_utf8_bom_loads(tmp_path):
    p = tmp_path / "bom.toml"
    p.write_bytes(b"\xef\xbb\xbf" + (SCENARIOS_DIR / "default.toml").read_bytes())
    assert load_scenario(p) == load_scenario(SCENARIOS_DIR / "default.toml").replace(source=str(p))

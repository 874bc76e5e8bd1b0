"""``drive-il maps list|export|pull`` (in-process through drive_il.cli.main)."""

from __future__ import annotations

import socket
import time

import pytest

from drive_il.cli import main
from drive_il.maps import opendrive_gen, towns as maps


@pytest.fixture
def no_maps_env(monkeypatch, tmp_path):
    monkeypatch.delenv(maps.MAPS_DIR_ENV, raising=False)
    monkeypatch.setattr(maps, "USER_MAPS_DIR", tmp_path / "no_user_maps")


def test_list_shows_generated_towns_with_spawn_points(capsys, no_maps_env):
    assert main(["maps", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert set(rows) == set(opendrive_gen.GENERATED_TOWNS)
    for name, cols in rows.items():
        assert cols[1] == "generated"
        assert int(cols[4]) == len(maps.spawn_points(maps.load_town(name).map))
    assert int(rows["grid"][3]) == 16 and int(rows["circuit"][3]) == 0  # junctions


def test_list_reports_files_and_a_corrupt_one(capsys, tmp_path, no_maps_env):
    (tmp_path / "Loop.xodr").write_text(opendrive_gen.generate_circuit())
    (tmp_path / "Bad.xodr").write_text("<OpenDRIVE>")
    assert main(["maps", "list", "--maps-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"maps directory: {tmp_path}" in out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "file" in lines["Loop"] and str(tmp_path / "Loop.xodr") in lines["Loop"]
    assert "error" in lines["Bad"] and "not valid XML" in lines["Bad"]


def test_export_writes_a_loadable_town(capsys, tmp_path, no_maps_env):
    out = tmp_path / "sub" / "grid.xodr"
    assert main(["maps", "export", "grid", "--out", str(out)]) == 0
    assert out.read_text() == opendrive_gen.generate_grid()
    town = maps.load_town(str(out))
    assert town.name == "grid" and not town.generated
    assert "wrote" in capsys.readouterr().out


def test_export_unknown_town_is_one_line_and_exit_2(capsys, tmp_path, no_maps_env):
    assert main(["maps", "export", "Town09", "--out", str(tmp_path / "x.xodr")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("drive-il: error: unknown town 'Town09'") and "\n" not in err
    assert not (tmp_path / "x.xodr").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pull_from_an_unreachable_server_fails_within_the_timeout(capsys, tmp_path):
    port = _closed_port()
    t0 = time.perf_counter()
    rc = main(["maps", "pull", "--host", "127.0.0.1", "--port", str(port), "--timeout", "0.5",
               "--maps-dir", str(tmp_path)])
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert f"127.0.0.1:{port}" in err and "CARLA 0.9.16 server running" in err and "--host/--port" in err
    assert elapsed < 5.0
    assert list(tmp_path.iterdir()) == []


class _FakeMap:
    def __init__(self, town: str, text: str):
        self.name, self._text = f"Carla/Maps/{town}", text

    def to_opendrive(self) -> str:
        return self._text


class _FakeWorld:
    def __init__(self, town: str, text: str):
        self._map = _FakeMap(town, text)

    def get_map(self):
        return self._map


class _FakeClient:
    """The slice of carla.Client that ``maps pull`` uses, serving generated towns."""

    towns = {"Town01": opendrive_gen.generate_circuit(), "Town02": opendrive_gen.generate_grid(),
             "Town03": "<OpenDRIVE><header/></OpenDRIVE>"}
    loads: list[str] = []

    def __init__(self, host, port):
        self.current = "Town02"

    def set_timeout(self, seconds):
        pass

    def get_server_version(self):
        return "0.9.16"

    def get_client_version(self):
        return "0.9.16"

    def get_available_maps(self):
        return [f"/Game/Carla/Maps/{t}" for t in self.towns]

    def get_world(self):
        return _FakeWorld(self.current, self.towns[self.current])

    def load_world(self, town):
        type(self).loads.append(town)
        self.current = town
        return self.get_world()


def test_pull_saves_the_servers_towns(monkeypatch, capsys, tmp_path):
    carla = pytest.importorskip("carla")
    monkeypatch.setattr(carla, "Client", _FakeClient)
    monkeypatch.setattr("drive_il.sim.carla.probe.require_carla", lambda *a: "0.9.16")  # no socket
    monkeypatch.setattr(_FakeClient, "loads", [])
    out = tmp_path / "pulled"
    assert main(["maps", "pull", "--maps-dir", str(out), "--town", "town01", "--town", "Town02"]) == 0
    assert _FakeClient.loads == ["Town01"]  # Town02 was loaded already: pulled first, no reload
    assert sorted(p.name for p in out.iterdir()) == ["Town01.xodr", "Town02.xodr"]
    assert (out / "Town01.xodr").read_text() == _FakeClient.towns["Town01"]
    assert maps.load_town("Town02", out).xodr == opendrive_gen.generate_grid()
    capsys.readouterr()
    # A town the server lacks, and a town whose OpenDRIVE is unusable: one-line errors.
    assert main(["maps", "pull", "--maps-dir", str(out), "--town", "Town07"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Town07" in err and "Town01, Town02, Town03" in err and "\n" not in err
    assert main(["maps", "pull", "--maps-dir", str(out), "--town", "Town03"]) == 2
    assert "no <road>" in capsys.readouterr().err
    assert not (out / "Town03.xodr").exists()


def test_turns_prints_junction_geometry_per_command(capsys, no_maps_env):
    assert main(["maps", "turns", "grid", "circuit", "--routes", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["town", "command", "n"]
    rows = {ln.split()[1]: ln.split() for ln in lines[1:] if ln.startswith("grid")}
    assert {"LEFT", "RIGHT"} <= set(rows)
    assert int(rows["LEFT"][2]) >= 1 and float(rows["LEFT"][3]) > 5.0       # junction length [m]
    assert rows.get("STRAIGHT", ["", "", "", "", "-"])[4] == "-"           # no arc going straight
    assert any(ln.startswith("circuit") and "no junction" in ln for ln in lines)


def test_turns_bad_input_is_one_line(capsys, no_maps_env):
    assert main(["maps", "turns", "grid", "--routes", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--routes" in err[0]
    assert main(["maps", "turns", "NoSuchTown"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NoSuchTown" in err[0]

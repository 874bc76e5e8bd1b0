"""drive_il.types: slot-by-slot building of the frozen value types."""

from __future__ import annotations

import pytest

from drive_il.types import ActorState, WalkerState, slot_setters


def test_slot_setters_build_the_same_value_as_the_constructor():
    names = ("color", "height", "width", "length", "z", "speed", "yaw", "y", "x", "actor_id")
    values = ((1, 2, 3), 1.5, 1.9, 4.5, 0.0, 3.0, 0.2, -5.0, 7.0, 12)
    st = object.__new__(ActorState)
    for put, v in zip(slot_setters(ActorState, names), values):
        put(st, v)
    ref = ActorState(actor_id=12, x=7.0, y=-5.0, yaw=0.2, speed=3.0, length=4.5, width=1.9, height=1.5,
                     color=(1, 2, 3))
    assert st == ref and hash(st) == hash(ref) and repr(st) == repr(ref)
    with pytest.raises(AttributeError):
        st.x = 0.0  # still frozen


def test_slot_setters_refuse_a_missing_or_repeated_field():
    fields = ("actor_id", "x", "y", "yaw", "speed", "z", "radius", "height", "on_road", "color")
    with pytest.raises(TypeError, match=r"slot_setters\(WalkerState\)"):
        slot_setters(WalkerState, fields[:-1])
    with pytest.raises(TypeError, match="every field once"):
        slot_setters(WalkerState, fields[:-1] + ("x",))
    assert len(slot_setters(WalkerState, fields)) == 10

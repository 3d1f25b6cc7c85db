"""The one registry shape: collisions refused, the same object welcome again, unknown names get the closest."""

from __future__ import annotations

import pytest

from visdepth.errors import ConfigError, NameCollisionError, UnknownNameError, VisdepthError
from visdepth.registry import EXPERIMENTS, Registry, closest, unknown_name_message


def _colours() -> Registry[object]:
    reg: Registry[object] = Registry("colour", listing="paint --list")
    for name in ("red", "green", "blue"):
        reg.register(name, object())
    return reg


def test_decorator_and_plain_forms_register_and_return_the_object():
    reg: Registry[type] = Registry("widget")

    @reg.register("knob")
    class Knob: ...

    def dial() -> None: ...

    assert reg.register("dial", dial) is dial
    assert reg.get("knob") is Knob and reg.get("dial") is dial
    assert reg.names() == ["knob", "dial"] and reg.items() == [("knob", Knob), ("dial", dial)]
    assert "knob" in reg and "lever" not in reg and 3 not in reg
    assert list(reg) == ["knob", "dial"] and len(reg) == 2
    assert reg.find("lever") is None and reg.find("knob") is Knob


def test_collision_is_refused_with_both_named_on_one_line():
    reg: Registry[object] = Registry("widget")

    def first() -> None: ...

    def second() -> None: ...

    reg.register("knob", first)
    with pytest.raises(NameCollisionError) as err:
        reg.register("knob", second)
    msg = str(err.value)
    assert "widget 'knob' is already registered" in msg and "\n" not in msg
    assert "first" in msg and "second" in msg
    assert isinstance(err.value, VisdepthError) and isinstance(err.value, ValueError)
    assert reg.get("knob") is first  # the refused one took nothing
    reg.register("knob", second, overwrite=True)  # a deliberate replacement
    assert reg.get("knob") is second


def test_same_object_again_is_a_no_op():
    reg: Registry[object] = Registry("widget")
    thing = object()
    assert reg.register("knob", thing) is thing
    assert reg.register("knob", thing) is thing
    assert reg.items() == [("knob", thing)]


def test_a_reloaded_definition_replaces_the_old_one():
    # a module imported again defines a new class object with the same module and qualified name
    reg: Registry[type] = Registry("widget")
    old = type("Knob", (), {"__module__": "plugins.knobs"})
    new = type("Knob", (), {"__module__": "plugins.knobs"})
    other = type("Knob", (), {"__module__": "plugins.other"})
    reg.register("knob", old)
    reg.register("knob", new)
    assert reg.get("knob") is new
    with pytest.raises(NameCollisionError):
        reg.register("knob", other)


def test_unknown_name_lists_the_closest_and_where_to_list_all():
    reg = _colours()
    with pytest.raises(UnknownNameError) as err:
        reg.get("gren")
    msg = str(err.value)
    assert msg == "unknown colour 'gren'; did you mean green? See `paint --list` for every name."
    assert isinstance(err.value, ConfigError)  # callers that catch ConfigError keep working
    # nothing close: the names themselves, when few
    with pytest.raises(UnknownNameError, match="use one of red, green, blue"):
        reg.get("purple")
    with pytest.raises(UnknownNameError, match="did you mean red"):
        reg.get("RED")  # case does not hide the match
    with pytest.raises(UnknownNameError, match="did you mean blue"):
        reg.unregister("bleu")


def test_message_helpers():
    assert closest("vqa2", ["vqav2", "blink", "chartqa"]) == ["vqav2"]
    assert closest("shpes:train", ["shapes", "shapes:train", "shapes:test"])[0] == "shapes:train"
    many = [f"name{i}" for i in range(30)]
    msg = unknown_name_message("thing", "zzz", many, listing="tool list", hint="Or a path")
    assert (
        msg == "unknown thing 'zzz'; no registered name is close. Or a path. See `tool list` for every name."
    )
    assert "use one of a, b" in unknown_name_message("thing", "zzz", many, listed=["a", "b"])
    assert unknown_name_message("thing", "x", []) == "unknown thing 'x'; none is registered."


def test_names_must_be_plain_strings():
    reg: Registry[object] = Registry("widget")
    for bad in ("", " knob", None):
        with pytest.raises(ValueError, match="non-empty string"):
            reg.register(bad, object())  # type: ignore[arg-type]


def test_shared_namespace_refuses_a_name_held_by_the_other_unless_same():
    tasks: Registry[str] = Registry("task")
    data: Registry[str] = Registry("data set")
    data.register("photos", "photos-data")
    data.register("shapes", "shapes-data")
    # a task may take a data set's name only when it is built on it (here: its value names the data)
    tasks.share_names_with(data, lambda name, task, spec: task == f"{spec} task", fix="build it on the data")
    tasks.register("photos", "photos-data task")
    with pytest.raises(NameCollisionError) as err:
        tasks.register("shapes", "something else")
    msg = str(err.value)
    assert "task 'shapes'" in msg and "data set 'shapes'" in msg and "one namespace" in msg
    assert "build it on the data" in msg and "\n" not in msg
    # and the other way round: a data set under a task's name
    tasks.register("blink", "blink task")
    with pytest.raises(NameCollisionError, match="data set 'blink'.*collides with the task 'blink'"):
        data.register("blink", "blink-data")
    data.register("other", "other-data")
    # linking again (a reloaded module) does not stack checks, and checks what is already there
    tasks.share_names_with(data, lambda name, task, spec: True)
    data.register("blink", "blink-data")
    clash: Registry[str] = Registry("experiment")
    clash.register("photos", "an experiment")
    with pytest.raises(NameCollisionError, match="experiment 'photos'"):
        clash.share_names_with(data, lambda name, a, b: False)


def test_experiments_registry_exists_for_the_experiments():
    assert EXPERIMENTS.kind == "experiment" and EXPERIMENTS.listing

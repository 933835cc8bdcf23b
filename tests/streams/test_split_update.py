"""``split_update`` reads a detector's output whatever its shape: a plain list of windows, an object with
``windows`` and ``incidents``, or a list of windows that carries ``incidents`` (the engine's shape)."""

from __future__ import annotations

from types import SimpleNamespace

from otlp_gateway.streams.incidents import split_update


class WindowList(list):
    """A list of windows with incident updates attached, as the engine's ``UpdateResult``."""

    def __init__(self, windows: list, incidents: list):
        super().__init__(windows)
        self.incidents = incidents


def test_incidents_are_read_from_every_shape_of_output() -> None:
    assert split_update(["w1", "w2"]) == (["w1", "w2"], ())
    assert split_update(SimpleNamespace(windows=["w1"], incidents=["u1"])) == (["w1"], ("u1",))
    windows, updates = split_update(WindowList(["w1", "w2"], ["u1"]))
    assert list(windows) == ["w1", "w2"] and updates == ("u1",)

"""Detector registry: ``kind -> factory(**config) -> Detector`` and ``kind -> restore(bytes)``.

A new detector module registers itself with ``@register("kind", restore=...)``; nothing else changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from detectors.base import Detector

_FACTORIES: dict[str, Callable[..., Detector]] = {}
Restorer = Callable[[bytes | memoryview], Detector]
_RESTORERS: dict[str, Restorer] = {}
_BUILTIN_MODULES = ("detectors.cbad", "detectors.numeric")


Factory = Callable[..., Detector]


def register(kind: str, *, restore: Restorer) -> Callable[[Factory], Factory]:
    def wrap(factory: Factory) -> Factory:
        if kind in _FACTORIES:
            raise ValueError(f"detector kind {kind!r} is already registered")
        _FACTORIES[kind] = factory
        _RESTORERS[kind] = restore
        return factory

    return wrap


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def available() -> list[str]:
    _load_builtins()
    return sorted(_FACTORIES)


def create(kind: str, **config: Any) -> Detector:
    _load_builtins()
    try:
        factory = _FACTORIES[kind]
    except KeyError:
        known = ", ".join(sorted(_FACTORIES))
        raise ValueError(f"unknown detector kind {kind!r}; available: {known}") from None
    return factory(**config)


def exercise(kind: str, seed: int = 0, events: int = 1000) -> None:
    """Run a fresh detector of ``kind`` on ``events`` of its class's example events (every detector class
    makes them: the conformance suite's ``example_events``), so the kernels it uses are compiled, or loaded
    from numba's cache, before real events need them."""
    detector = create(kind, seed=seed)
    detector.update(type(detector).example_events(events, seed))  # type: ignore[attr-defined]


def restore(kind: str, data: bytes | memoryview) -> Detector:
    """The detector a ``snapshot`` of kind ``kind`` wrote; ``data`` may be a view into a larger snapshot."""
    _load_builtins()
    return _RESTORERS[kind](data)

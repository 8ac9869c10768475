"""The public namespaces: each name is defined in a private module of its own package,
exported from one layer only, and documented."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

import memactor

LAYERS = [
    "memactor.events",
    "memactor.codec",
    "memactor.metrics",
    "memactor.runtime",
    "memactor.actors",
    "memactor.remote",
    "memactor.cluster",
    "memactor.tui",
    "memactor.cli",
    "memactor.pytest_plugin",
]


def public_names(module: types.ModuleType) -> dict[str, object]:
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


@pytest.mark.parametrize("name", LAYERS)
def test_layer_defines_its_names_in_private_modules(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__
    for attr, value in public_names(module).items():
        if inspect.isclass(value) or inspect.isfunction(value):
            origin = value.__module__
            assert origin.startswith(f"{name}._"), f"{name}.{attr} comes from {origin}"
            assert value.__doc__, f"{name}.{attr} has no docstring"


def test_no_name_is_exported_by_two_layers() -> None:
    seen: dict[int, str] = {}
    for name in LAYERS:
        for attr, value in public_names(importlib.import_module(name)).items():
            if inspect.isclass(value) or inspect.isfunction(value):
                where = f"{name}.{attr}"
                assert id(value) not in seen, f"{where} is also {seen[id(value)]}"
                seen[id(value)] = where


def test_top_level_reexports_layer_names() -> None:
    layer_objects = {
        id(value)
        for name in LAYERS
        for value in public_names(importlib.import_module(name)).values()
    }
    for attr, value in public_names(memactor).items():
        if inspect.isclass(value) or inspect.isfunction(value):
            assert id(value) in layer_objects or value is memactor.MemactorError, attr

"""memactor.runtime re-exports its public names from private modules (its layering is
checked with every other package's in ``tests/test_layers.py``)."""

from __future__ import annotations

import types

import memactor.runtime

ACTOR_FRAMEWORK = {
    "Actor",
    "ActorFailedError",
    "ActorNotFoundError",
    "ActorRef",
    "ActorSpec",
    "ActorState",
    "ActorStatistics",
    "ActorSystem",
    "AskTimeoutError",
    "DuplicateNameError",
    "MessageDroppedError",
    "Overflow",
    "Restart",
    "RestartIntensityError",
    "Strategy",
    "Supervisor",
    "open_system",
}


def public_names() -> dict[str, object]:
    return {
        name: value
        for name, value in vars(memactor.runtime).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def test_the_actor_framework_is_exported() -> None:
    assert ACTOR_FRAMEWORK.issubset(public_names())


def test_public_names_are_defined_in_private_modules() -> None:
    for name, value in public_names().items():
        if isinstance(value, int | float):
            continue  # a default setting: constants carry no module
        module = getattr(value, "__module__", "")
        assert module.startswith("memactor.runtime._"), (name, module)

"""memactor.runtime re-exports its public names from private modules, and stays in layer 4."""

from __future__ import annotations

import pathlib
import re
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

HIGHER_LAYER_IMPORT = re.compile(
    r"^\s*(?:from|import)\s+(?:memactor\.|\.\.)(?:actors|metrics|remote|tui|cli)\b", re.MULTILINE
)


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


def test_the_runtime_imports_no_higher_layer() -> None:
    for path in pathlib.Path(memactor.runtime.__file__).parent.glob("*.py"):
        assert not HIGHER_LAYER_IMPORT.findall(path.read_text()), path.name

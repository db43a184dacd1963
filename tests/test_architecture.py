"""The package's structure: no import cycles, no import from a higher layer, one kind of registry.

The layers, lowest first (docs/building.md draws them): shared base modules; sources and the LLM engine;
the builder registry and the row providers; recipes; categories; everything that runs them (the
executor, the commands, validation, publishing, evaluation). A module may import its own layer and the
ones below. Imports inside functions count: hiding an import in a function does not remove the
dependency. A new module that is not named here belongs to the top layer.
"""

from __future__ import annotations

import pytest

from builders.codegraph import cycles, import_graph
from builders.errors import GeniesError
from builders.registries import Registry

LAYERS = (
    ("base", ("builders.__init__", "builders.errors", "builders.schema", "builders.splits", "builders.templating",
              "builders.resources", "builders.registries", "builders.codegraph", "builders.catalog",
              "builders.generators", "builders.sandbox", "builders.sandbox_harness", "builders.mutation",
              "builders.text")),
    ("sources and llm", ("builders.sources", "builders.llm")),
    ("builder registry and row providers", ("builders.registry", "builders.rows")),
    ("recipes", ("builders.recipes",)),
    ("categories", ("builders.categories",)),
)
TOP = "executor and commands"


def layer_of(module: str) -> int:
    """The index of the module's layer: the longest listed prefix wins; unlisted modules are on top."""
    module = "builders.__init__" if module == "builders" else module
    best, rank = -1, len(LAYERS)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def layer_name(rank: int) -> str:
    return LAYERS[rank][0] if rank < len(LAYERS) else TOP


def test_no_import_cycles_counting_imports_inside_functions():
    assert cycles(import_graph()) == []


def test_no_module_imports_from_a_layer_above_it():
    upward = [
        f"{module} ({layer_name(layer_of(module))}) imports {target} ({layer_name(layer_of(target))})"
        for module, targets in sorted(import_graph().items()) for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking_blocks():
    graph = import_graph()
    assert "builders.sources" in graph["builders.registry"]  # imported inside BuildContext.source
    assert "builders.llm" not in graph["builders.registry"]  # only under TYPE_CHECKING
    assert "builders.pipeline" in graph["builders.cli.build"]


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert cycles(graph) == [["a", "b", "c"]]


def test_a_name_registered_from_two_places_is_an_error_naming_both():
    registry: Registry[int] = Registry("widget")
    registry.add("w", 1, "module_a")
    registry.add("w", 2, "module_a")  # the same origin again (a re-import) replaces
    with pytest.raises(GeniesError, match=r"widget 'w' is registered twice \(module_a and module_b\)"):
        registry.add("w", 3, "module_b")
    assert registry["w"] == 2 and registry.origin("w") == "module_a"


def test_a_snapshot_restores_the_registry():
    registry: Registry[int] = Registry("widget")
    registry.add("kept", 1, "here")
    with registry.snapshot():
        registry.add("temporary", 2, "test")
        registry.remove("kept")
        assert list(registry) == ["temporary"]
    assert dict(registry) == {"kept": 1}
    with pytest.raises(GeniesError, match="did you mean kept"):
        registry.lookup("keptt")


def test_every_registry_is_a_registry():
    from builders.recipes.steps import STEPS
    from builders.registry import BUILDERS, FAMILIES
    from builders.sources.normalizers import NORMALIZERS
    from builders.validation.registry import CHECKS

    assert all(isinstance(r, Registry) for r in (BUILDERS, FAMILIES, STEPS, NORMALIZERS, CHECKS))

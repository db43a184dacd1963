"""Finding builders: which module to import for a distribution, and the one catalog every command shares.

Importing a category module registers its builders, and some modules are expensive to import (the recipe
builders parse every spec and load the LLM client). So a build imports only the modules its selection
needs: the names a category module registers are read from its source (the string literal given to
`@distribution` or `@distribution_family`), recipe specs register under their directory's name, and only
a name found nowhere makes every module load. `genies list` and a build of everything load them all.

Plugins (new categories living outside this package) are Python modules named in the `GENIES_PLUGINS`
environment variable (comma-separated module names or `.py` paths) or exposed through the
`genies.categories` entry-point group; they are always imported, since their names are unknown until then.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Iterable, Iterator
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from builders.catalog import Catalog, load_catalog
from builders.errors import GeniesError
from builders.registry import (
    BUILDERS,
    FAMILIES,
    PLUGIN_CATALOG_DIRS,
    Builder,
    member_builder,
)
from builders.resources import SPEC_FILE
from builders.templating import template_dirs

CATEGORIES = "builders.categories"
RECIPES_MODULE = f"{CATEGORIES}.llm_recipes"
REGISTERING_CALLS = ("distribution", "distribution_family")

_state = {"plugins": False, "all": False}


def _category_modules() -> list[str]:
    package = importlib.import_module(CATEGORIES)
    return [f"{CATEGORIES}.{info.name}" for info in pkgutil.iter_modules(package.__path__)]


def _literal_registrations(path: Path) -> Iterator[str]:
    """The string literals passed first to `distribution(...)`/`distribution_family(...)` in a module."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) in REGISTERING_CALLS and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value


@cache
def _module_index() -> dict[str, str]:
    """Distribution or family name -> the category module that registers it (read, not imported)."""
    index: dict[str, str] = {}
    for module in _category_modules():
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin:
            index.update(dict.fromkeys(_literal_registrations(Path(spec.origin)), module))
    for directory in template_dirs():
        for path in Path(directory).glob(f"*/{SPEC_FILE}"):
            index.setdefault(path.parent.name, RECIPES_MODULE)
    return index


def _import_plugin(spec: str) -> None:
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec).resolve()
        if not path.exists():
            raise GeniesError(f"plugin file {path} does not exist", "fix GENIES_PLUGINS")
        module_name = f"genies_plugin_{path.stem}"
        if module_name in sys.modules:
            return
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise GeniesError(f"plugin file {path} cannot be loaded as a Python module", "fix GENIES_PLUGINS")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        loader_spec.loader.exec_module(module)
    else:
        try:
            importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            raise GeniesError(f"plugin module {spec!r} cannot be imported: {exc}", "fix GENIES_PLUGINS") from exc


def _load_plugins() -> None:
    if not _state["plugins"]:
        _state["plugins"] = True
        for ep in entry_points(group="genies.categories"):
            ep.load()
        for spec in filter(None, (s.strip() for s in os.environ.get("GENIES_PLUGINS", "").split(","))):
            _import_plugin(spec)


def plugin_catalog_dirs() -> list[Path]:
    _load_plugins()
    return list(PLUGIN_CATALOG_DIRS)


@cache
def _catalog_for(dirs: tuple[Path, ...]) -> Catalog:
    return load_catalog(dirs)


def catalog() -> Catalog:
    """The built-in catalog plus the plugins' entries, loaded once per process (and per set of plugins)."""
    return _catalog_for(tuple(plugin_catalog_dirs()))


def discover() -> dict[str, Builder]:
    """Import every category module and plugin once; return every builder, default family members included."""
    _load_plugins()
    if not _state["all"]:
        _state["all"] = True
        for module in _category_modules():
            importlib.import_module(module)
        for family in catalog().families.values():
            if family.name in FAMILIES:
                for member in family.defaults():
                    resolve(member.name)
    return dict(BUILDERS)


def resolve(name: str) -> Builder | None:
    """The builder of `name`, importing only the module that registers it (or its family's and base's)."""
    _load_plugins()
    if name in BUILDERS:
        return BUILDERS[name]
    member = catalog().member(name)
    key = member.family.name if member is not None else name
    module = _module_index().get(key)
    if module is not None:
        importlib.import_module(module)
    elif not _state["all"]:
        discover()
    if member is None:
        return BUILDERS.get(name)
    base = resolve(member.base)
    return member_builder(member, base) if base is not None else None


def resolved(names: Iterable[str]) -> dict[str, Builder]:
    """The builders of those `names` that have one."""
    found = {name: resolve(name) for name in names}
    return {name: b for name, b in found.items() if b is not None}


def reset_discovery() -> None:
    """Forget which plugins and modules were loaded (tests that change GENIES_PLUGINS call this)."""
    _state.update(plugins=False, all=False)
    _module_index.cache_clear()

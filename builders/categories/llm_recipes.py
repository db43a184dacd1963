"""The LLM-written distributions: one builder per recipe spec under templates/<distribution>/spec.toml.

The recipe itself lives in builders/recipes (docs/recipes.md); this module only registers it when the
category modules are discovered.
"""

from builders.recipes import register_recipes

register_recipes()

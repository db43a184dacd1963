"""Declarative LLM recipes: one spec (`templates/<distribution>/spec.toml`) plus templates per distribution.

See docs/recipes.md for the spec format, the steps and how to add a distribution.
"""

from builders.recipes.recipe import (
    get_spec,
    load_specs,
    mixed_with_recipe,
    recipe_records,
    register_recipes,
    run_recipe,
)
from builders.recipes.spec import Spec, load_spec
from builders.recipes.steps import STEPS, Candidate, RecipeRun, step
from builders.recipes import steps_more  # noqa: F401, E402 (registers its steps before any spec is loaded)

__all__ = ["STEPS", "Candidate", "RecipeRun", "Spec", "get_spec", "load_spec", "load_specs", "mixed_with_recipe",
           "recipe_records", "register_recipes", "run_recipe", "step"]

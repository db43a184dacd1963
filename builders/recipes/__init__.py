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
from builders.recipes.steps import (
    STEPS,
    Candidate,
    LLMStep,
    RecipeRun,
    Step,
    register_step,
)

__all__ = ["STEPS", "Candidate", "LLMStep", "RecipeRun", "Spec", "Step", "get_spec", "load_spec", "load_specs",
           "mixed_with_recipe", "recipe_records", "register_recipes", "register_step", "run_recipe"]

"""The generic LLM recipe: run a distribution's spec through `ctx.llm`, round by round, into records.

Each spec under `templates/<distribution>/spec.toml` becomes one registered builder (needs_llm=True).
A round asks the first step for enough new candidates to reach the target (the wanted rows plus a
margin): the missing rows times `overgenerate` in the first round, divided by the yield observed so far
in later ones. It passes them through the per-round steps and keeps the survivors; rounds repeat, up to
`max_rounds`, while rows are missing, and stop early when a whole round keeps nothing. Final steps
(length balancing) then see the whole pool. Every request goes through the engine, keyed by its prompt, template hash and
sample index, so a rerun replays from the cache (offline too) and produces the same records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from builders.errors import GeniesError
from builders.recipes.spec import Spec, load_spec
from builders.recipes.steps import STEPS, Candidate, RecipeRun
from builders.registry import BuildContext, BuilderFn, distribution
from builders.resources import SPEC_FILE
from builders.schema import Provenance, Record
from builders.sources import source_available
from builders.templating import render, template_dirs, template_id

MARGIN = 1.15  # the split cannot use every row exactly (groups), so aim a little above the wanted size
MIN_YIELD = 0.2  # a later round asks at most 5 candidates per missing row


def spec_paths() -> list[Path]:
    """Every `<distribution>/spec.toml` in the template directories (the package's, then plugins')."""
    found: dict[str, Path] = {}
    for directory in template_dirs():
        for path in sorted(Path(directory).glob(f"*/{SPEC_FILE}")):
            found.setdefault(path.parent.name, path)
    return [found[name] for name in sorted(found)]


@cache
def _spec_at(path: Path, mtime_ns: int) -> Spec:
    return load_spec(path)


def load_specs() -> dict[str, Spec]:
    """All specs by distribution name, each checked (a broken spec fails here, naming file and field)."""
    return {path.parent.name: _spec_at(path, path.stat().st_mtime_ns) for path in spec_paths()}


def get_spec(name: str) -> Spec:
    specs = load_specs()
    if name not in specs:
        raise GeniesError(f"no recipe spec for {name!r}", f"create templates/{name}/{SPEC_FILE} (docs/recipes.md)")
    return specs[name]


def spec_templates(spec: Spec) -> list[str]:
    """The templates a spec's build reads: prompt formats, shared step prompts and its own parts."""
    names = [spec.prompt, spec.prompt_with_input]
    for step_name in spec.steps:
        names.extend(STEPS[step_name].templates(spec))
    return list(dict.fromkeys(names))


def _expected_yield(spec: Spec, accepted: int, asked: int) -> float:
    """Kept candidates per candidate asked: 1/overgenerate at first, then what the earlier rounds achieved
    (at least MIN_YIELD, so one bad round cannot ask for an unbounded number)."""
    if not asked:
        return 1 / spec.overgenerate
    return max(accepted / asked, MIN_YIELD)


def run_recipe(ctx: BuildContext, spec: Spec, target: int | None = None) -> list[Candidate]:
    """The candidates that survive every step of `spec`, in a deterministic order; `target` defaults to the
    distribution's wanted rows plus a margin."""
    if ctx.llm is None:
        raise GeniesError(f"{spec.name} needs the LLM engine", "set OPENAI_BASE_URL (or use --dry-run to estimate)")
    run = RecipeRun(ctx, spec)
    steps = [STEPS[name] for name in spec.steps]
    target = math.ceil(ctx.wanted * MARGIN) if target is None else target
    asked = 0
    for round_number in range(1, spec.max_rounds + 1):
        missing = target - len(run.accepted)
        if missing <= 0:
            break
        run.need = math.ceil(missing / _expected_yield(spec, len(run.accepted), asked))
        asked += run.need
        candidates: list[Candidate] = []
        for current in steps:
            if not current.final:
                candidates = current.run(run, candidates)
        run.accepted.extend(candidates)
        if run.planning:
            break
        if not candidates:
            ctx.note(f"stopped after round {round_number}: no candidate survived it (reasons in rejects.jsonl)")
            break
    for current in steps:
        if current.final:
            run.accepted = current.run(run, run.accepted)
    wanted = min(ctx.wanted, target)
    if len(run.accepted) < wanted and not run.planning:
        ctx.note(_shortfall(run, wanted, round_number))
    return run.accepted


def _shortfall(run: RecipeRun, wanted: int, rounds: int) -> str:
    """The build note of a recipe that kept fewer rows than wanted, saying why."""
    note = f"{run.spec.name}: {len(run.accepted)} rows for the {wanted} wanted"
    if run.rows is not None and run.rows.exhausted:
        return f"{note}: the upstream {run.rows.provider.source} holds only {run.rows.size} usable rows, all used"
    return f"{note} after {rounds} round(s) of generation (max_rounds); why candidates were dropped is in rejects.jsonl"


def recipe_records(ctx: BuildContext, spec: Spec, target: int | None = None) -> Iterable[Record]:
    """The records of `spec`'s candidates: preferred response first (the pipeline balances positions)."""
    template_ids = {name: template_id(name) for name in (spec.prompt, spec.prompt_with_input)}
    model = ctx.llm.model if ctx.llm is not None else None
    for candidate in run_recipe(ctx, spec, target):
        prompt_format = spec.prompt_with_input if candidate.input else spec.prompt
        yield Record(
            distribution=ctx.distribution,
            prompt=render(prompt_format, instruction=candidate.instruction, input=candidate.input),
            responses=candidate.responses,
            preferred=0,
            group=candidate.group,
            provenance=Provenance(candidate.source, candidate.revision, candidate.row_key, model,
                                  tuple(candidate.requests)),
            template=template_ids[prompt_format],
            instruction=candidate.instruction,
            input=candidate.input or None,
            meta={**spec.meta, **candidate.meta, "recipe": spec.name},
        )


def _unavailable_sources(ctx: BuildContext, spec: Spec) -> list[str]:
    needed = [spec.upstream.source] if spec.upstream and "upstream" in spec.steps else []
    return [name for name in needed if not source_available(name, ctx.mirror, ctx.cache_dir)]


def mixed_with_recipe(ctx: BuildContext, records: Iterable[Record], spec_name: str, note: str) -> list[Record]:
    """A deterministic builder's `records` mixed half and half with the records of the LLM recipe
    `spec_name` (a `register = false` spec), e.g. alpaca_mmlu's MMLU questions with Alpaca items.

    Without an LLM or the recipe's upstream source, `records` are returned as they are and `note` (plus
    what is missing) goes to the build notes. When the recipe falls short, more of `records` fill the size.
    """
    spec = get_spec(spec_name)
    missing = _unavailable_sources(ctx, spec)
    if ctx.llm is None or missing:
        ctx.note(f"{note} (missing here: {'source ' + ', '.join(missing) if missing else 'an LLM'})")
        return list(records)
    target = math.ceil(ctx.wanted * MARGIN)
    generated = list(recipe_records(ctx, spec, target=math.ceil(target / 2)))
    base = list(records)
    keep = min(len(base), max(len(generated), target - len(generated)))
    chosen = sorted(ctx.rng("mix").sample(range(len(base)), keep))
    return [base[i] for i in chosen] + generated


def _builder(name: str) -> BuilderFn:
    def build(ctx: BuildContext) -> Iterable[Record]:
        return recipe_records(ctx, get_spec(name))

    build.__doc__ = f"The {name} recipe (templates/{name}/{SPEC_FILE})."
    return build


def register_recipes() -> list[str]:
    """Register one needs_llm builder per spec with `register = true`; returns their names.

    Runs when `builders.categories` is discovered; a plugin that adds a template directory with specs
    calls it again after `add_template_dir` (re-registering a recipe is harmless). A spec named like a
    distribution another module builds must say `register = false` and be run by that module's builder
    through `recipe_records` (as alpaca_mmlu does for its Alpaca part).
    """
    registered = []
    for spec in load_specs().values():
        if spec.register:
            distribution(spec.name, needs_llm=True, templates=spec_templates(spec))(_builder(spec.name))
            registered.append(spec.name)
    return registered

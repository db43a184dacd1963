"""`genies build --dry-run`: what each LLM distribution would cost at the requested size, sending nothing.

The selected LLM builders run against an engine in dry-run mode (docs/llm-engine.md): cached answers are
served, every other request is counted and estimated and answered with a schema-shaped placeholder, so
multi-step recipes run end to end. The records they yield are thrown away.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from builders.discovery import resolved
from builders.llm import Engine
from builders.llm.accounting import StepStats
from builders.pipeline import (
    BUILT,
    BuildOptions,
    DistributionResult,
    build_distribution,
)


@dataclass(frozen=True)
class Estimate:
    """One distribution's dry run: requests still to send, cached ones, estimated tokens and cost."""

    name: str
    requests: int
    cached: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    batch_cost_usd: float | None
    status: str


def llm_distributions(names: Iterable[str]) -> list[str]:
    """The selected distributions that may call the LLM: LLM builders, and deterministic builders with a
    recipe part (alpaca_mmlu's Alpaca part, us_history's generated top-up)."""
    found = resolved(names)
    return [n for n in names if n in found and found[n].may_call_llm]


def _steps_of(engine: Engine, name: str) -> StepStats:
    total = StepStats()
    for step_name, stats in engine.stats.by_step.items():
        if step_name.split(".", 1)[0] == name:
            total.merge(stats)
    return total


def estimate_build(names: Iterable[str], options: BuildOptions, engine: Engine) -> list[Estimate]:
    """Dry-run every LLM distribution among `names` with `engine` (which must be in dry-run mode)."""
    if not engine.dry_run:
        raise ValueError("estimate_build needs an engine in dry-run mode")
    estimates: list[Estimate] = []
    built: dict[str, DistributionResult] = {}
    for name in llm_distributions(names):
        result = build_distribution(name, options, engine, built)
        stats = _steps_of(engine, name)
        notes = result.context.notes if result.context else []
        status = ("; ".join(notes) or "estimated") if result.status == BUILT else result.label
        estimates.append(Estimate(name, stats.planned, stats.hits, stats.est_prompt_tokens,
                                  stats.est_completion_tokens, stats.est_cost_usd, stats.est_batch_cost_usd, status))
    return estimates

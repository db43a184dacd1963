"""Tokens, money and outcomes per step, so a build summary can say what a run cost and what it reused.

Prices are USD per 1M tokens, from the packaged `prices.toml` plus the user's config, with the share a
batch takes off (`batch_discount`, 0.5 for OpenAI's Batch API); a model without a price is accounted in
tokens only (its cost shows as "?", never as a made-up number).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from rich.table import Table

PRICES_FILE = Path(__file__).with_name("prices.toml")
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
BATCH_DISCOUNT = 0.5


class Price(NamedTuple):
    """USD per 1M input and output tokens, and the share of that a batch request does not pay."""

    input: float
    output: float
    batch_discount: float = BATCH_DISCOUNT


def price_of(entry: Mapping[str, Any]) -> Price:
    """A price-table entry (`input`, `output`, optional `batch_discount`); KeyError/ValueError if malformed."""
    discount = float(entry.get("batch_discount", BATCH_DISCOUNT))
    if not 0 <= discount <= 1:
        raise ValueError(f"batch_discount must be between 0 and 1, got {discount}")
    return Price(float(entry["input"]), float(entry["output"]), discount)


@cache
def default_prices() -> dict[str, Price]:
    table = tomllib.loads(PRICES_FILE.read_text())
    return {model: price_of(p) for model, p in table.items()}


def estimate_prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """A tokenizer-free estimate (about 4 characters a token) used for dry runs and the TPM limiter."""
    total = 0
    for message in messages:
        content = message.get("content") or ""
        text = content if isinstance(content, str) else str(content)
        total += MESSAGE_OVERHEAD_TOKENS + len(text) // CHARS_PER_TOKEN
    return total


def cost_usd(prices: Mapping[str, Price], model: str, prompt: int, completion: int, *,
             batch: bool = False) -> float | None:
    """What `prompt` + `completion` tokens of `model` cost, live or (`batch`) through a batch."""
    price = prices.get(model)
    if price is None:
        return None
    live = (prompt * price.input + completion * price.output) / 1_000_000
    return live * (1 - price.batch_discount) if batch else live


@dataclass
class StepStats:
    """Counters of one step. `sent` counts requests that went to the network (each once, however many
    attempts), `batched` those of them that went through the Batch API (priced at batch rates); `refused`
    counts requests the server rejected (4xx), whether just now or from the cache. `est_batch_cost_usd` is
    what a dry run's requests would cost through batches. `seconds` is the wall time of the `run_batch`
    calls that carried the step's requests."""

    calls: int = 0
    hits: int = 0
    sent: int = 0
    batched: int = 0
    refused: int = 0
    failed: int = 0
    offline_misses: int = 0
    retries: int = 0
    reasks: int = 0
    rejects: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    planned: int = 0
    est_prompt_tokens: int = 0
    est_completion_tokens: int = 0
    est_cost_usd: float | None = 0.0
    est_batch_cost_usd: float | None = 0.0
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        return self.refused + self.failed + self.offline_misses

    @property
    def misses(self) -> int:
        """Requests not found in the cache: sent, planned (dry run) or refused for being offline."""
        return self.sent + self.planned + self.offline_misses

    def add_cost(self, value: float | None, name: str = "cost_usd") -> None:
        """Add to one of the money counters; unknown (None) stays unknown."""
        current = getattr(self, name)
        setattr(self, name, None if value is None or current is None else current + value)

    def merge(self, other: StepStats) -> None:
        for f in fields(self):
            if f.name in MONEY:
                self.add_cost(getattr(other, f.name), f.name)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


MONEY = ("cost_usd", "est_cost_usd", "est_batch_cost_usd")


def _as_dict(stats: StepStats) -> dict[str, Any]:
    return {**asdict(stats), "errors": stats.errors, "misses": stats.misses}


def money(value: float | None) -> str:
    """Dollars, or `?` when a model has no price."""
    return "?" if value is None else f"${value:,.4f}"


class RunStats:
    """Per-step counters for one engine; `table()` and `estimate_table()` render them for a summary."""

    def __init__(self) -> None:
        self.by_step: dict[str, StepStats] = {}

    def step(self, name: str) -> StepStats:
        return self.by_step.setdefault(name, StepStats())

    def total(self) -> StepStats:
        total = StepStats()
        for stats in self.by_step.values():
            total.merge(stats)
        return total

    def to_dict(self) -> dict[str, Any]:
        """Plain data for manifests and JSON output: per step and in total."""
        steps = {name: _as_dict(s) for name, s in sorted(self.by_step.items())}
        return {"steps": steps, "total": _as_dict(self.total())}

    def table(self, title: str = "LLM requests") -> Table:
        """Per step: what was asked, reused, sent (and of that, through batches), spent. The cost of
        requests sent through a batch is counted at batch prices."""
        columns = ["step", "calls", "cache hits", "sent", "by batch", "errors", "retries", "re-asks", "rejects",
                   "tokens in", "tokens out", "cost"]
        rows = [(name, s) for name, s in sorted(self.by_step.items())] + [("total", self.total())]
        return _table(title, columns, [
            (name, s.calls, s.hits, s.sent, s.batched, s.errors, s.retries, s.reasks, s.rejects,
             f"{s.prompt_tokens:,}", f"{s.completion_tokens:,}", money(s.cost_usd))
            for name, s in rows
        ])

    def estimate_table(self, title: str = "LLM dry run: nothing was sent") -> Table:
        columns = ["step", "requests to send", "already cached", "est. tokens in", "est. tokens out", "est. cost",
                   "est. batch cost"]
        rows = [(name, s) for name, s in sorted(self.by_step.items())] + [("total", self.total())]
        return _table(title, columns, [
            (name, s.planned, s.hits, f"{s.est_prompt_tokens:,}", f"{s.est_completion_tokens:,}",
             money(s.est_cost_usd), money(s.est_batch_cost_usd))
            for name, s in rows
        ])


def _table(title: str, columns: list[str], rows: list[tuple[Any, ...]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    return table

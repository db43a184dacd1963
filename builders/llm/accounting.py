"""Tokens, money and outcomes per step, so a build summary can say what a run cost and what it reused.

Prices are USD per 1M tokens, from the packaged `prices.toml` plus the user's config; a model without a
price is accounted in tokens only (its cost shows as "?", never as a made-up number).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from rich.table import Table

PRICES_FILE = Path(__file__).with_name("prices.toml")
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4


@cache
def default_prices() -> dict[str, tuple[float, float]]:
    table = tomllib.loads(PRICES_FILE.read_text())
    return {model: (float(p["input"]), float(p["output"])) for model, p in table.items()}


def estimate_prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """A tokenizer-free estimate (about 4 characters a token) used for dry runs and the TPM limiter."""
    total = 0
    for message in messages:
        content = message.get("content") or ""
        text = content if isinstance(content, str) else str(content)
        total += MESSAGE_OVERHEAD_TOKENS + len(text) // CHARS_PER_TOKEN
    return total


def cost_usd(prices: Mapping[str, tuple[float, float]], model: str, prompt: int, completion: int) -> float | None:
    price = prices.get(model)
    if price is None:
        return None
    return (prompt * price[0] + completion * price[1]) / 1_000_000


@dataclass
class StepStats:
    """Counters of one step. `sent` counts requests that went to the network (each once, however many
    attempts); `refused` counts requests the server rejected (4xx), whether just now or from the cache."""

    calls: int = 0
    hits: int = 0
    sent: int = 0
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

    @property
    def errors(self) -> int:
        return self.refused + self.failed + self.offline_misses

    @property
    def misses(self) -> int:
        """Requests not found in the cache: sent, planned (dry run) or refused for being offline."""
        return self.sent + self.planned + self.offline_misses

    def add_cost(self, value: float | None, *, estimate: bool = False) -> None:
        name = "est_cost_usd" if estimate else "cost_usd"
        current = getattr(self, name)
        setattr(self, name, None if value is None or current is None else current + value)

    def merge(self, other: StepStats) -> None:
        for f in fields(self):
            if f.name in {"cost_usd", "est_cost_usd"}:
                self.add_cost(getattr(other, f.name), estimate=f.name == "est_cost_usd")
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def _as_dict(stats: StepStats) -> dict[str, Any]:
    return {**asdict(stats), "errors": stats.errors, "misses": stats.misses}


def _money(value: float | None) -> str:
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
        columns = ["step", "calls", "cache hits", "sent", "errors", "retries", "re-asks", "rejects",
                   "tokens in", "tokens out", "cost"]
        rows = [(name, s) for name, s in sorted(self.by_step.items())] + [("total", self.total())]
        return _table(title, columns, [
            (name, s.calls, s.hits, s.sent, s.errors, s.retries, s.reasks, s.rejects,
             f"{s.prompt_tokens:,}", f"{s.completion_tokens:,}", _money(s.cost_usd))
            for name, s in rows
        ])

    def estimate_table(self, title: str = "LLM dry run: nothing was sent") -> Table:
        columns = ["step", "requests to send", "already cached", "est. tokens in", "est. tokens out", "est. cost"]
        rows = [(name, s) for name, s in sorted(self.by_step.items())] + [("total", self.total())]
        return _table(title, columns, [
            (name, s.planned, s.hits, f"{s.est_prompt_tokens:,}", f"{s.est_completion_tokens:,}",
             _money(s.est_cost_usd))
            for name, s in rows
        ])


def _table(title: str, columns: list[str], rows: list[tuple[Any, ...]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    return table

"""LLM run settings, resolved once from flags, then environment, then a TOML file, then defaults.

Throughput knobs (concurrency, rpm, tpm) live here and never in the request cache key, so changing them
never invalidates an answer already paid for.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from builders.errors import GeniesError, check_name
from builders.llm.accounting import Price, default_prices, price_of
from builders.llm.client import TRANSPORTS
from builders.llm.structured import STRUCTURED_MODES

STRUCTURED_CHOICES = ("auto", *STRUCTURED_MODES)
MODES = ("live", "batch", "batch-then-live")

DEFAULT_CACHE = Path.home() / ".cache" / "genies" / "llm.sqlite"

ENV_VARS: dict[str, str] = {
    "base_url": "OPENAI_BASE_URL",
    "api_key": "OPENAI_API_KEY",
    "model": "GENIES_LLM_MODEL",
    "cache_path": "GENIES_LLM_CACHE",
    "concurrency": "GENIES_LLM_CONCURRENCY",
    "rpm": "GENIES_LLM_RPM",
    "tpm": "GENIES_LLM_TPM",
    "offline": "GENIES_OFFLINE",
    "transport": "GENIES_LLM_TRANSPORT",
    "structured": "GENIES_LLM_STRUCTURED",
    "mode": "GENIES_LLM_MODE",
    "batch_poll_s": "GENIES_LLM_BATCH_POLL_S",
}
CONFIG_FILE_VAR = "GENIES_LLM_CONFIG"
OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class LLMConfig:
    """Everything an `Engine` needs. `prices` maps model -> Price (USD per 1M input and output tokens, and
    the batch discount). `mode` is how cache misses go out: `live` calls, `batch` (OpenAI's Batch API,
    polled every `batch_poll_s`, at most `batch_max_requests` lines a batch) or `batch-then-live` (a
    step's first round as a batch, its later rounds live)."""

    base_url: str = OPENAI_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    model: str = "gpt-4o-mini"
    cache_path: Path = DEFAULT_CACHE
    concurrency: int = 16
    rpm: int | None = None
    tpm: int | None = None
    transport: str = "aiohttp"
    structured: str = "auto"
    mode: str = "live"
    batch_poll_s: float = 30.0
    batch_max_requests: int = 50_000
    timeout_s: float = 60.0
    max_attempts: int = 6
    backoff_s: float = 0.5
    max_wait_s: float = 60.0
    max_reasks: int = 2
    offline: bool = False
    replay: bool = False
    dry_run: bool = False
    completion_tokens_guess: int = 256
    prices: Mapping[str, Price] = field(default_factory=lambda: dict(default_prices()))

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise GeniesError(f"LLM concurrency must be at least 1, got {self.concurrency}",
                              "set --concurrency 1 or more")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise GeniesError(f"LLM {name} must be positive, got {value}", f"omit {name} for no limit")
        check_name(self.transport, TRANSPORTS, "LLM transport")
        check_name(self.structured, STRUCTURED_CHOICES, "structured-output mode")
        check_name(self.mode, MODES, "LLM mode")
        if self.batch_max_requests < 1 or self.batch_poll_s <= 0:
            raise GeniesError("batch_max_requests and batch_poll_s must be positive",
                              "OpenAI takes at most 50,000 requests a batch; poll every few seconds or more")
        if self.max_attempts < 1:
            raise GeniesError("max_attempts must be at least 1", "set max_attempts = 1 to disable retries")


def _coerce(name: str, value: Any) -> Any:
    """Turn a string from the environment or a TOML value into the field's type, with a clear error."""
    if value is None or value == "":
        return None
    try:
        if name in {"concurrency", "rpm", "tpm", "max_attempts", "max_reasks", "completion_tokens_guess",
                    "batch_max_requests"}:
            return int(value)
        if name in {"timeout_s", "max_wait_s", "backoff_s", "batch_poll_s"}:
            return float(value)
        if name in {"offline", "replay", "dry_run"}:
            return value if isinstance(value, bool) else str(value).strip().lower() in {"1", "true", "yes", "on"}
        if name == "cache_path":
            return Path(value).expanduser()
    except (TypeError, ValueError) as exc:
        raise GeniesError(f"LLM setting {name}={value!r} is not valid: {exc}", f"give {name} a number") from exc
    return str(value)


def _prices_from_toml(table: Mapping[str, Any]) -> dict[str, Price]:
    prices = {}
    for model, entry in table.items():
        try:
            prices[model] = price_of(entry)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise GeniesError(
                f"price of model {model!r} is not valid: {entry!r}",
                'write it as [llm.prices."MODEL"] input = 0.15  output = 0.60  batch_discount = 0.5 '
                '(USD per 1M tokens; the share a batch does not pay)',
            ) from exc
    return prices


def read_config_file(path: Path) -> dict[str, Any]:
    """The `[llm]` table of a TOML file, with typed values and parsed `[llm.prices]`."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise GeniesError(f"LLM config file {path} does not exist", f"create it or unset {CONFIG_FILE_VAR}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise GeniesError(f"LLM config file {path} is not valid TOML: {exc}", "fix the file") from exc
    table = dict(data.get("llm", {}))
    settings = {}
    known = [f.name for f in fields(LLMConfig)]
    for key, value in table.items():
        check_name(key, known, "LLM setting")
        settings[key] = _prices_from_toml(value) if key == "prices" else _coerce(key, value)
    return settings


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    return {name: _coerce(name, environ[var]) for name, var in ENV_VARS.items() if environ.get(var)}


def resolve_config(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> LLMConfig:
    """Merge settings: flags (None = not given) > environment > config file > defaults.

    The config file is `config_file`, else `$GENIES_LLM_CONFIG`, else none. Prices from the file are added
    to the packaged price table, so one model can be re-priced without restating the others.
    """
    environ = os.environ if environ is None else environ
    config_file = config_file or (Path(environ[CONFIG_FILE_VAR]) if environ.get(CONFIG_FILE_VAR) else None)
    from_file = read_config_file(config_file) if config_file else {}
    merged: dict[str, Any] = {**from_file, **_from_env(environ)}
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    merged["prices"] = {**default_prices(), **from_file.get("prices", {}), **merged.get("prices", {})}
    return replace(LLMConfig(), **merged)


def llm_configured(environ: Mapping[str, str] | None = None, config_file: Path | None = None) -> bool:
    """Whether a server was named at all (OPENAI_BASE_URL or OPENAI_API_KEY, or a config file giving one)."""
    environ = os.environ if environ is None else environ
    if environ.get("OPENAI_BASE_URL") or environ.get("OPENAI_API_KEY"):
        return True
    config_file = config_file or (Path(environ[CONFIG_FILE_VAR]) if environ.get(CONFIG_FILE_VAR) else None)
    if config_file is None:
        return False
    settings = read_config_file(config_file)
    return bool(settings.get("base_url") or settings.get("api_key"))

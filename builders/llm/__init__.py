"""The LLM generation engine: one cached, rate-limited, resumable OpenAI-compatible client.

Builders receive it as `ctx.llm` (None when no LLM is configured) and call `await ctx.llm.chat(...)` or
`ctx.llm.run_batch([...])`. With `mode = "batch"` a run_batch's cache misses go through OpenAI's Batch API
(builders.llm.batch_api); builders.llm.batch reads and writes the batch files. See docs/llm-engine.md.
"""

from builders.llm.cache import RequestCache, request_key
from builders.llm.config import LLMConfig, resolve_config
from builders.llm.engine import ChatRequest, ChatResult, Engine, engine_from_env
from builders.llm.structured import JsonObject, JsonSchema, Parser, Text

__all__ = [
    "ChatRequest",
    "ChatResult",
    "Engine",
    "JsonObject",
    "JsonSchema",
    "LLMConfig",
    "Parser",
    "RequestCache",
    "Text",
    "engine_from_env",
    "request_key",
    "resolve_config",
]

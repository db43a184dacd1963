"""The one object builders use for LLM calls: cached, rate-limited, retried, parsed, accounted.

    result = await ctx.llm.chat(messages, step="cooking.wrong_step", template=template_id("llm/cooking.j2"),
                                response_format=JsonSchema(schema), temperature=0.7)
    if not result.ok:
        ctx.reject(result.reason, result.raw)

or, from synchronous builder code, `ctx.llm.run_batch([ChatRequest(...), ...])` (results in order, with a
progress bar). Every call ends as exactly one of: an answer (`ok`), a request error (cached when the
server would always refuse it), a failure after bounded retries, an offline cache miss, or a reject
(unparseable after bounded re-asks) carrying the raw text. Nothing ever becomes an empty string.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from builders.llm.accounting import RunStats, cost_usd, estimate_prompt_tokens
from builders.llm.cache import RequestCache, request_key
from builders.llm.client import (
    Answer,
    ChatClient,
    RequestError,
    RetryableError,
    RetryPolicy,
    complete_with_retries,
    make_client,
)
from builders.llm.config import LLMConfig, llm_configured, resolve_config
from builders.llm.limiter import Limiter
from builders.llm.structured import OutputSpec, ParseError, output_spec, reask_messages

Status = Literal["answer", "error", "failed", "offline_miss", "rejected", "dry_run"]
REQUEST_HEADER = "X-Genies-Request"
T = TypeVar("T")


@dataclass(frozen=True)
class ChatResult:
    """How one chat call ended. `key` is the cache key of the request that produced it (for provenance)."""

    key: str
    step: str
    status: Status
    text: str | None = None
    parsed: Any = None
    reason: str | None = None
    raw: str | None = None
    from_cache: bool = False
    model: str | None = None
    finish_reason: str | None = None

    @property
    def ok(self) -> bool:
        """An answer that can be used (a dry-run placeholder counts: nothing downstream is exported)."""
        return self.status in ("answer", "dry_run")


@dataclass(frozen=True)
class ChatRequest:
    """One call for `Engine.run_batch`; the fields mirror `Engine.chat`'s arguments."""

    messages: Sequence[Mapping[str, Any]]
    step: str
    template: str | None = None
    sample: int = 0
    response_format: OutputSpec | Mapping[str, Any] | None = None
    parser: Callable[[str], Any] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _LoopState:
    """Objects bound to one event loop: the HTTP client, the limiter, requests in flight."""

    client: ChatClient
    limiter: Limiter
    in_flight: dict[str, asyncio.Future] = field(default_factory=dict)


class Engine:
    """Cached, rate-limited, resumable chat completions for one run. Thread-compatible, loop-aware."""

    def __init__(self, config: LLMConfig, cache: RequestCache | None = None) -> None:
        self.config = config
        self.cache = cache or RequestCache(config.cache_path)
        self.stats = RunStats()
        self.rejects: list[dict[str, Any]] = []
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._policy = RetryPolicy(config.max_attempts, config.backoff_s, config.max_wait_s)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm-cache-writer")

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def dry_run(self) -> bool:
        return self.config.dry_run

    def keyed_request(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        template: str | None,
        sample: int,
        reask: int,
        params: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Everything that can change an answer; its hash is the cache key."""
        params = dict(params)
        return {
            "base_url": self.config.base_url.rstrip("/"),
            "model": params.pop("model", self.config.model),
            "messages": [dict(m) for m in messages],
            "params": params,
            "sample": sample,
            "reask": reask,
            "template": template,
        }

    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        step: str,
        template: str | None = None,
        sample: int = 0,
        response_format: OutputSpec | Mapping[str, Any] | None = None,
        parser: Callable[[str], Any] | None = None,
        **params: Any,
    ) -> ChatResult:
        """One chat completion, served from the cache when possible, checked against the declared output.

        `step` names the generation step for accounting; `template` is the template id (name@hash) the
        messages were rendered from; `sample` distinguishes deliberate repeats of the same request;
        `params` are generation parameters (temperature, max_tokens, seed, model...).
        """
        spec = output_spec(response_format, parser)
        if spec.response_format is not None:
            params["response_format"] = spec.response_format
        stats = self.stats.step(step)
        stats.calls += 1
        conversation = [dict(m) for m in messages]
        for reask in range(self.config.max_reasks + 1):
            keyed = self.keyed_request(conversation, template=template, sample=sample, reask=reask, params=params)
            result = await self._ask(step, keyed)
            if not result.ok:
                return result
            try:
                return replace(result, parsed=spec.parse(result.text))
            except ParseError as problem:
                if result.status == "dry_run":
                    return result
                last_problem = problem
            if reask < self.config.max_reasks:
                stats.reasks += 1
                if spec.reask == "followup":
                    conversation = reask_messages(conversation, result.text, str(last_problem))
        return self._reject(step, result, f"unusable answer after {self.config.max_reasks} re-asks: {last_problem}")

    def _reject(self, step: str, result: ChatResult, reason: str) -> ChatResult:
        self.stats.step(step).rejects += 1
        self.rejects.append({"step": step, "key": result.key, "reason": reason, "raw": result.text})
        return replace(result, status="rejected", reason=reason, raw=result.text, text=None)

    async def _ask(self, step: str, keyed: dict[str, Any]) -> ChatResult:
        """One keyed request: cache, then (unless offline or dry run) the network, shared by duplicates."""
        key = request_key(keyed)
        stats = self.stats.step(step)
        cached = self.cache.get(key)
        if cached is not None:
            stats.hits += 1
            stats.refused += cached.outcome == "error"
            return self._from_cache(step, key, cached.outcome, cached.body)
        if self.config.offline:
            stats.offline_misses += 1
            return ChatResult(key, step, "offline_miss",
                              reason="not in the LLM cache and offline mode is on (unset --offline / GENIES_OFFLINE)")
        if self.config.dry_run:
            return self._plan(step, key, keyed)
        state = self._state()
        pending = state.in_flight.get(key)
        if pending is not None:
            stats.hits += 1
            return replace(await asyncio.shield(pending), step=step, from_cache=True)
        future = asyncio.get_running_loop().create_future()
        state.in_flight[key] = future
        try:
            result = await self._send(step, key, keyed, state)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del state.in_flight[key]

    def _from_cache(self, step: str, key: str, outcome: str, body: Mapping[str, Any]) -> ChatResult:
        if outcome == "error":
            reason = f"cached request error: HTTP {body['status']}: {body['message']}"
            return ChatResult(key, step, "error", reason=reason, from_cache=True)
        answer = Answer.from_cache(body)
        return ChatResult(key, step, "answer", text=answer.text, from_cache=True, model=answer.model,
                          finish_reason=answer.finish_reason)

    def _plan(self, step: str, key: str, keyed: Mapping[str, Any]) -> ChatResult:
        """Dry run: count the request and estimate its tokens and cost, send nothing."""
        stats = self.stats.step(step)
        params = keyed["params"]
        prompt = estimate_prompt_tokens(keyed["messages"])
        completion = int(params.get("max_tokens") or params.get("max_completion_tokens")
                         or self.config.completion_tokens_guess)
        stats.planned += 1
        stats.est_prompt_tokens += prompt
        stats.est_completion_tokens += completion
        stats.add_cost(cost_usd(self.config.prices, keyed["model"], prompt, completion), estimate=True)
        placeholder = output_spec(params.get("response_format")).placeholder()
        return ChatResult(key, step, "dry_run", text=placeholder, model=keyed["model"])

    async def _send(self, step: str, key: str, keyed: Mapping[str, Any], state: _LoopState) -> ChatResult:
        """Send one request; its answer (or deterministic refusal) is in the cache before this returns."""
        stats = self.stats.step(step)
        stats.sent += 1
        payload = {"model": keyed["model"], "messages": keyed["messages"], **keyed["params"]}

        def count_retry(_: RetryableError) -> None:
            stats.retries += 1

        async def store(outcome: str, body: dict[str, Any]) -> None:
            await self._store(key, keyed, outcome, body)

        try:
            answer = await complete_with_retries(
                state.client, state.limiter, payload, {REQUEST_HEADER: key},
                estimated_tokens=estimate_prompt_tokens(keyed["messages"]), policy=self._policy,
                on_retry=count_retry, store=store,
            )
        except RequestError as exc:
            stats.refused += 1
            return ChatResult(key, step, "error", reason=str(exc))
        except RetryableError as exc:
            stats.failed += 1
            return ChatResult(key, step, "failed",
                              reason=f"gave up after {self.config.max_attempts} attempts: {exc.reason}")
        stats.prompt_tokens += answer.prompt_tokens
        stats.completion_tokens += answer.completion_tokens
        stats.add_cost(cost_usd(self.config.prices, keyed["model"], answer.prompt_tokens, answer.completion_tokens))
        return ChatResult(key, step, "answer", text=answer.text, model=answer.model,
                          finish_reason=answer.finish_reason)

    async def _store(self, key: str, keyed: Mapping[str, Any], outcome: str, body: Mapping[str, Any]) -> None:
        """Commit to the cache on the writer thread: the event loop never waits on the disk."""
        await asyncio.get_running_loop().run_in_executor(self._writer, self.cache.put, key, keyed, outcome, body)

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = _LoopState(
                make_client(self.config.transport, self.config.base_url, self.config.api_key, self.config.timeout_s),
                Limiter(self.config.concurrency, self.config.rpm, self.config.tpm),
            )
            self._states[loop] = state
        return state

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (call it when using `chat` from your own loop)."""
        state = self._states.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.client.close()

    async def chat_many(self, requests: Sequence[ChatRequest], progress: Progress | None = None) -> list[ChatResult]:
        """All requests concurrently (the limiter bounds them), results in request order."""
        steps = ", ".join(sorted({r.step for r in requests}))
        task_id = progress.add_task(f"LLM {steps[:60]}", total=len(requests)) if progress else None

        async def one(request: ChatRequest) -> ChatResult:
            result = await self.chat(request.messages, step=request.step, template=request.template,
                                     sample=request.sample, response_format=request.response_format,
                                     parser=request.parser, **request.params)
            if progress is not None:
                progress.advance(task_id)
            return result

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(r)) for r in requests]
        except ExceptionGroup as failures:
            raise failures.exceptions[0] from None  # e.g. bad credentials: the same cause in every task
        return [t.result() for t in tasks]

    def run_batch(self, requests: Iterable[ChatRequest], *, show_progress: bool = True) -> list[ChatResult]:
        """Synchronous `chat_many` for builder code, with a progress bar on stderr."""
        requests = list(requests)

        async def run() -> list[ChatResult]:
            try:
                if not show_progress:
                    return await self.chat_many(requests)
                with _progress_bar() as progress:
                    return await self.chat_many(requests, progress)
            finally:
                await self.aclose()

        return _run_sync(run())

    def summary_table(self) -> Table:
        """What a build prints at the end: the estimate in a dry run, else what was used and spent."""
        return self.stats.estimate_table() if self.dry_run else self.stats.table()

    def write_rejects(self, path: Path) -> int:
        """Append this run's rejects (step, request key, reason, raw text) as JSON lines; return how many."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            for reject in self.rejects:
                out.write(json.dumps(reject, ensure_ascii=False) + "\n")
        return len(self.rejects)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.cache.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=False)


def _run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, also when this thread already runs a loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def engine_from_env(
    *,
    offline: bool = False,
    dry_run: bool = False,
    config_file: Path | None = None,
    **flags: Any,
) -> Engine | None:
    """An engine configured from flags, environment and config file; None when no LLM server is named.

    `genies build` uses None to report "skipped: needs an LLM (set OPENAI_BASE_URL ...)". A dry run needs
    no server (nothing is sent). An offline run still needs the server named, because its base URL is
    part of every cache key.
    """
    if not (dry_run or flags.get("base_url") or flags.get("api_key") or llm_configured(config_file=config_file)):
        return None
    flags = {**flags, "offline": offline or None, "dry_run": dry_run or None}
    return Engine(resolve_config(flags, config_file=config_file))

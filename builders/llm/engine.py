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
import logging
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from builders.errors import GeniesError
from builders.llm.accounting import RunStats, cost_usd, estimate_prompt_tokens
from builders.llm.batch import LineAnswer, payload_of
from builders.llm.batch_api import BatchCounts, BatchRunner, Collector
from builders.llm.cache import RequestCache, request_key
from builders.llm.client import (
    REFUSED,
    Answer,
    ChatClient,
    RequestError,
    RetryableError,
    RetryPolicy,
    complete_with_retries,
    make_client,
    mentions_response_format,
)
from builders.llm.config import LLMConfig, llm_configured, resolve_config
from builders.llm.limiter import Limiter
from builders.llm.replay import public_base_url
from builders.llm.structured import (
    STRUCTURED_MODES,
    JsonSchema,
    OutputSpec,
    ParseError,
    output_spec,
    reask_messages,
)

Status = Literal["answer", "error", "failed", "offline_miss", "rejected", "dry_run"]
REQUEST_HEADER = "X-Genies-Request"
LOG = logging.getLogger("genies.llm")
PROBE_SCHEMA = {"type": "object", "required": ["ok"], "additionalProperties": False,
                "properties": {"ok": {"type": "boolean"}}}
PROBE_MESSAGES = ({"role": "user", "content": 'Reply with this JSON object and nothing else: {"ok": true}'},)
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
    probe_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    collector: Collector | None = None
    progress: Progress | None = None


class Engine:
    """Cached, rate-limited, resumable chat completions for one run. Thread-compatible, loop-aware."""

    def __init__(self, config: LLMConfig, cache: RequestCache | None = None) -> None:
        self.config = config
        self.cache = cache or RequestCache(config.cache_path)
        self.stats = RunStats()
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._policy = RetryPolicy(config.max_attempts, config.backoff_s, config.max_wait_s)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm-cache-writer")
        self._base_url = public_base_url(config.base_url)
        self.used_keys: set[str] = set()
        self.misses: dict[str, dict[str, Any]] = {}  # offline cache misses: what export-requests writes
        self.batch_counts = BatchCounts()
        self._batched_steps: set[str] = set()
        self._modes: dict[str, str] = {}
        self._modes_lock = threading.Lock()

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
        structured: str | None = None,
    ) -> dict[str, Any]:
        """Everything that can change an answer; its hash is the cache key. `structured` is the
        structured-output mode of a schema-bearing request (it shapes the messages and response_format)."""
        params = dict(params)
        keyed = {
            "base_url": self._base_url,
            "model": params.pop("model", self.config.model),
            "messages": [dict(m) for m in messages],
            "params": params,
            "sample": sample,
            "reask": reask,
            "template": template,
        }
        if structured is not None:
            keyed["structured"] = structured
        return keyed

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
        `params` are generation parameters (temperature, max_tokens, seed, model...). A JSON schema is
        sent in the server's structured-output mode; when the server refuses that mode mid-run, the call
        is asked again in the next one.
        """
        spec = output_spec(response_format, parser)
        self.stats.step(step).calls += 1
        model = params.get("model", self.config.model)
        mode = await self.structured_mode(model) if isinstance(spec, JsonSchema) else None
        while True:
            result = await self._ask_until_parsed(step, spec, mode, messages, template, sample, params)
            if mode is None or not self._mode_refused(result):
                return result
            mode = self._fall_back(model, mode, result.reason or "")
            if mode is None:
                return result

    async def _ask_until_parsed(self, step: str, spec: OutputSpec, mode: str | None,
                                messages: Sequence[Mapping[str, Any]], template: str | None, sample: int,
                                params: Mapping[str, Any]) -> ChatResult:
        """Ask, then re-ask a bounded number of times while the answer does not fit `spec`."""
        conversation = [dict(m) for m in messages]
        for reask in range(self.config.max_reasks + 1):
            sent, response_format = spec.request(mode, conversation)
            call_params = {**params, "response_format": response_format} if response_format else dict(params)
            keyed = self.keyed_request(sent, template=template, sample=sample, reask=reask, params=call_params,
                                       structured=mode)
            result = await self._ask(step, keyed, spec)
            if not result.ok:
                return result
            try:
                return replace(result, parsed=spec.parse(result.text))
            except ParseError as problem:
                if result.status == "dry_run":
                    return result
                last_problem = problem
            if reask < self.config.max_reasks:
                self.stats.step(step).reasks += 1
                if spec.reask == "followup":
                    conversation = reask_messages(sent, result.text, str(last_problem))
        return self._reject(step, result, f"unusable answer after {self.config.max_reasks} re-asks: {last_problem}")

    def _mode_refused(self, result: ChatResult) -> bool:
        return (self.config.structured == "auto" and result.status == "error"
                and mentions_response_format(result.reason or ""))

    def _fall_back(self, model: str, refused: str, reason: str) -> str | None:
        """The next structured-output mode after one the server refused (remembered, logged once)."""
        with self._modes_lock:
            current = self._modes.get(model, refused)
            if current == refused:
                following = STRUCTURED_MODES.index(refused) + 1
                if following == len(STRUCTURED_MODES):
                    return None
                current = self._modes[model] = STRUCTURED_MODES[following]
                self.cache.remember_structured_mode(self._base_url, model, current)
                LOG.warning("%s refused structured-output mode %s for model %s (%s); using %s",
                            self._base_url, refused, model, reason[:200], current)
        return current

    async def structured_mode(self, model: str) -> str:
        """How JSON schemas reach this server for `model`: the configured mode, else (auto) the one it was
        found to accept, probed once with one tiny request and remembered in the cache file. Offline and
        dry runs never probe: they use what was remembered or what cached requests used."""
        if self.config.structured != "auto":
            return self.config.structured
        known = self._modes.get(model) or self.cache.structured_mode(self._base_url, model)
        if known is None and (self.config.offline or self.config.dry_run):
            known = self.cache.structured_mode_in_requests(self._base_url, model) or STRUCTURED_MODES[0]
        if known is not None:
            self._modes.setdefault(model, known)
            return self._modes[model]
        state = self._state()
        async with state.probe_lock:
            if model not in self._modes:
                self._modes[model] = await self._probe(model, state)
        return self._modes[model]

    async def _probe(self, model: str, state: _LoopState) -> str:
        """The first structured-output mode the server accepts for a tiny request (2xx), else `prompt`.

        Only a refusal that names the structured-output request moves on to the next mode; any other
        failure ends the probe unremembered, and the real requests then report it in the server's words.
        """
        spec = JsonSchema(PROBE_SCHEMA, name="probe")
        for mode in STRUCTURED_MODES:
            messages, response_format = spec.request(mode, PROBE_MESSAGES)
            payload = {"model": model, "messages": messages, "max_tokens": 16, "temperature": 0}
            if response_format:
                payload["response_format"] = response_format
            try:
                await complete_with_retries(state.client, state.limiter, payload, {}, estimated_tokens=32,
                                            policy=self._policy, on_retry=lambda _: None, store=_discard)
            except RequestError as refused:
                if refused.about_response_format:
                    LOG.warning("%s refused structured-output mode %s for model %s (%s); trying the next",
                                self._base_url, mode, model, refused.message[:200])
                    continue
                return mode
            except RetryableError:
                return mode
            self.cache.remember_structured_mode(self._base_url, model, mode)
            return mode
        return STRUCTURED_MODES[-1]

    def _reject(self, step: str, result: ChatResult, reason: str) -> ChatResult:
        self.stats.step(step).rejects += 1
        return replace(result, status="rejected", reason=reason, raw=result.text, text=None)

    async def _ask(self, step: str, keyed: dict[str, Any], spec: OutputSpec) -> ChatResult:
        """One keyed request: cache, then (unless offline or dry run) the network, shared by duplicates."""
        key = request_key(keyed)
        stats = self.stats.step(step)
        self.used_keys.add(key)
        cached = self.cache.get(key)
        if cached is not None:
            stats.hits += 1
            stats.refused += cached.outcome == "error"
            return self._from_cache(step, key, cached.outcome, cached.body)
        if self.config.offline and self.config.replay:
            raise GeniesError(f"LLM request {key} of step {step} (distribution {step.split('.')[0]}) is not "
                              "among the replayed answers",
                              "replay the version this build reproduces, with the same distributions and options")
        if self.config.offline:
            stats.offline_misses += 1
            self.misses[key] = keyed
            return ChatResult(key, step, "offline_miss",
                              reason="not in the LLM cache and offline mode is on (unset --offline / GENIES_OFFLINE)")
        if self.config.dry_run:
            return self._plan(step, key, keyed, spec)
        state = self._state()
        if state.collector is not None and self._goes_by_batch(step):
            result, first = await state.collector.ask(key, (step, keyed))
            stats.hits += not first
            return result if first else replace(result, step=step, from_cache=True)
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

    def _plan(self, step: str, key: str, keyed: Mapping[str, Any], spec: OutputSpec) -> ChatResult:
        """Dry run: count the request and estimate its tokens and cost, send nothing."""
        stats = self.stats.step(step)
        params = keyed["params"]
        prompt = estimate_prompt_tokens(keyed["messages"])
        completion = int(params.get("max_tokens") or params.get("max_completion_tokens")
                         or self.config.completion_tokens_guess)
        stats.planned += 1
        stats.est_prompt_tokens += prompt
        stats.est_completion_tokens += completion
        stats.add_cost(cost_usd(self.config.prices, keyed["model"], prompt, completion), "est_cost_usd")
        stats.add_cost(cost_usd(self.config.prices, keyed["model"], prompt, completion, batch=True),
                       "est_batch_cost_usd")
        return ChatResult(key, step, "dry_run", text=spec.placeholder(), model=keyed["model"])

    def _goes_by_batch(self, step: str) -> bool:
        """In batch mode every round of misses goes out as a batch; in batch-then-live only a step's first."""
        return self.config.mode == "batch" or step not in self._batched_steps

    async def _send_round(self, requests: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, ChatResult]:
        """One round of misses through the Batch API; results as `_send` would give them live."""
        self._batched_steps.update(step for step, _ in requests.values())
        runner = BatchRunner(self.config, self.cache, self._base_url, self._state().progress, self.batch_counts)
        lines = await runner.run({key: keyed for key, (_, keyed) in requests.items()})
        return {key: self._round_result(step, key, keyed, lines[key]) for key, (step, keyed) in requests.items()}

    def _round_result(self, step: str, key: str, keyed: Mapping[str, Any], line: LineAnswer) -> ChatResult:
        stats = self.stats.step(step)
        stats.sent += 1
        stats.batched += 1
        if line.answer is not None:
            return self._answered(step, key, keyed, line.answer, batch=True)
        if line.refusal is not None:
            stats.refused += 1
            return ChatResult(key, step, "error", reason=f"{line.refusal} ({self._server(keyed)})")
        stats.failed += 1
        return ChatResult(key, step, "failed", reason=f"batch: {line.reason} ({self._server(keyed)})")

    def _answered(self, step: str, key: str, keyed: Mapping[str, Any], answer: Answer, *, batch: bool) -> ChatResult:
        """Account a fresh answer (tokens, and cost at live or batch prices) and make its result."""
        stats = self.stats.step(step)
        stats.prompt_tokens += answer.prompt_tokens
        stats.completion_tokens += answer.completion_tokens
        stats.add_cost(cost_usd(self.config.prices, keyed["model"], answer.prompt_tokens, answer.completion_tokens,
                                batch=batch))
        return ChatResult(key, step, "answer", text=answer.text, model=answer.model,
                          finish_reason=answer.finish_reason)

    async def _send(self, step: str, key: str, keyed: Mapping[str, Any], state: _LoopState) -> ChatResult:
        """Send one request; its answer (or deterministic refusal) is in the cache before this returns."""
        stats = self.stats.step(step)
        stats.sent += 1
        payload = payload_of(keyed)

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
            return ChatResult(key, step, "error", reason=f"{exc} ({self._server(keyed)})")
        except RetryableError as exc:
            stats.failed += 1
            tries = 2 if exc.kind == REFUSED else self.config.max_attempts
            hint = "; is the LLM server running there? (OPENAI_BASE_URL)" if exc.kind == REFUSED else ""
            return ChatResult(key, step, "failed", reason=f"gave up after {tries} attempts: "
                                                          f"{exc.reason} ({self._server(keyed)}){hint}")
        return self._answered(step, key, keyed, answer, batch=False)

    def _server(self, keyed: Mapping[str, Any]) -> str:
        return f"server {keyed['base_url']}, model {keyed['model']}"

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
        """All requests concurrently (the limiter bounds them), results in request order. In batch mode
        their cache misses are gathered and sent as batches, round by round (see batch_api.Collector)."""
        steps = ", ".join(sorted({r.step for r in requests}))
        task_id = progress.add_task(f"LLM {steps[:60]}", total=len(requests)) if progress else None
        state = self._state()
        batching = self.config.mode != "live" and not (self.config.offline or self.config.dry_run)
        collector = state.collector = Collector(self._send_round, len(requests)) if batching else None
        state.progress = progress

        async def one(request: ChatRequest) -> ChatResult:
            try:
                result = await self.chat(request.messages, step=request.step, template=request.template,
                                         sample=request.sample, response_format=request.response_format,
                                         parser=request.parser, **request.params)
            finally:
                if collector is not None:
                    collector.done()
            if progress is not None:
                progress.advance(task_id)
            return result

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(r)) for r in requests]
        except ExceptionGroup as failures:
            raise failures.exceptions[0] from None  # e.g. bad credentials: the same cause in every task
        finally:
            state.collector = None
        return [t.result() for t in tasks]

    def run_batch(self, requests: Iterable[ChatRequest], *, show_progress: bool = True) -> list[ChatResult]:
        """Synchronous `chat_many` for builder code, with a progress bar on stderr."""
        requests = list(requests)
        started = time.perf_counter()

        async def run() -> list[ChatResult]:
            try:
                if not show_progress:
                    return await self.chat_many(requests)
                with _progress_bar() as progress:
                    return await self.chat_many(requests, progress)
            finally:
                await self.aclose()

        try:
            return _run_sync(run())
        finally:
            for step in {r.step for r in requests}:
                self.stats.step(step).seconds += time.perf_counter() - started

    def summary_table(self) -> Table:
        """What a build prints at the end: the estimate in a dry run, else what was used and spent."""
        return self.stats.estimate_table() if self.dry_run else self.stats.table()

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.cache.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _discard(outcome: str, body: dict[str, Any]) -> None:
    """Probe answers are not kept: they belong to no build."""


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

"""Batch mode: a `run_batch`'s cache misses go out through OpenAI's Batch API (`/v1/files`, `/v1/batches`).

`Collector` holds the misses of one `run_batch` until every call in it is waiting on one, then hands them
over as one round; the re-asks those answers provoke form the next round. `BatchRunner` sends a round:
it uploads the request lines, creates the batch, writes the batch id and the keys it carries to the cache
database before it polls, downloads the output and error files and commits every answer (and every
refusal the server would repeat) under the key a live answer would have. A killed run that asks again
finds the open batch in the database and polls it instead of paying twice. Failed and expired requests
are sent again in a new batch, up to `max_attempts` batches; answered ones never are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.progress import Progress, TaskID

from builders.errors import GeniesError
from builders.llm.batch import (
    ENDPOINT,
    LineAnswer,
    parse_lines,
    read_answer,
    request_lines,
)
from builders.llm.cache import Outcome, RequestCache
from builders.llm.config import LLMConfig

FINISHED = frozenset({"completed", "failed", "expired", "cancelled"})
COMPLETION_WINDOW = "24h"
R = TypeVar("R")
T = TypeVar("T")


class Collector:
    """The misses of one `run_batch`, sent together once every call still running waits on one of them.

    `send` gets {key: request} and returns {key: result}. A key asked twice is sent once.
    """

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[dict[str, R]]], outstanding: int) -> None:
        self._send = send
        self._outstanding = outstanding
        self._waiting = 0
        self._pending: dict[str, tuple[Any, asyncio.Future]] = {}
        self._round: asyncio.Task | None = None

    async def ask(self, key: str, request: Any) -> tuple[Any, bool]:
        """The result for `key` once its round has been answered, and whether this call added the key
        (False for a duplicate of a key already waiting)."""
        entry = self._pending.get(key)
        first = entry is None
        if entry is None:
            entry = self._pending[key] = (request, asyncio.get_running_loop().create_future())
        self._waiting += 1
        self._maybe_send()
        try:
            return await asyncio.shield(entry[1]), first
        finally:
            self._waiting -= 1

    def done(self) -> None:
        """One call of the `run_batch` finished: the others may now all be waiting."""
        self._outstanding -= 1
        self._maybe_send()

    def _maybe_send(self) -> None:
        if self._pending and self._round is None and self._waiting >= self._outstanding:
            round_, self._pending = self._pending, {}
            self._round = asyncio.get_running_loop().create_task(self._answer(round_))

    async def _answer(self, round_: dict[str, tuple[Any, asyncio.Future]]) -> None:
        try:
            results = await self._send({key: request for key, (request, _) in round_.items()})
        except BaseException as exc:
            for _, future in round_.values():
                future.set_exception(exc)
                future.exception()  # the callers see it; asyncio must not report it as never retrieved
            raise
        else:
            for key, (_, future) in round_.items():
                future.set_result(results[key])
        finally:
            self._round = None


@dataclass
class BatchCounts:
    """What an engine's batches did (`Engine.batch_counts`): batches submitted and resumed, and request
    lines answered, failed (expired ones included) and expired."""

    submitted: int = 0
    resumed: int = 0
    answered: int = 0
    failed: int = 0
    expired: int = 0


class BatchRunner:
    """Sends rounds of keyed requests through the Batch API of `config.base_url` with the `openai` client."""

    def __init__(self, config: LLMConfig, cache: RequestCache, base_url: str, progress: Progress | None,
                 counts: BatchCounts) -> None:
        self.config = config
        self.cache = cache
        self.base_url = base_url
        self.progress = progress
        self.counts = counts

    async def run(self, requests: Mapping[str, Mapping[str, Any]]) -> dict[str, LineAnswer]:
        """The last word on each request: an answer, a refusal, or why it is still unanswered after
        `max_attempts` batches. Answers and cacheable refusals are in the cache when this returns."""
        import openai  # deferred: the SDK takes about a second to import and most builds send nothing

        client = openai.AsyncOpenAI(base_url=self.config.base_url, api_key=self.config.api_key or "unused",
                                    timeout=self.config.timeout_s, max_retries=self.config.max_attempts - 1)
        outcomes: dict[str, LineAnswer] = {}
        remaining = dict(requests)
        try:
            for _ in range(self.config.max_attempts):
                jobs = self._open_batches(remaining)
                carried = set().union(*jobs.values())
                uncovered = {key: request for key, request in remaining.items() if key not in carried}
                jobs.update(await self._submit(client, uncovered))
                for answered in await asyncio.gather(*(self._collect(client, i, keys) for i, keys in jobs.items())):
                    outcomes.update(answered)
                remaining = {key: request for key, request in remaining.items() if outcomes[key].retryable}
                if not remaining:
                    break
        finally:
            await client.close()
        return {key: outcomes[key] for key in requests}

    def _open_batches(self, remaining: Mapping[str, Any]) -> dict[str, set[str]]:
        """Batches an earlier (killed) run submitted that carry some of these requests: poll, never resend."""
        found = {batch_id: keys for batch_id, keys in self.cache.open_batches(self.base_url).items()
                 if not keys.isdisjoint(remaining)}
        self.counts.resumed += len(found)
        return found

    async def _submit(self, client: Any, requests: Mapping[str, Mapping[str, Any]]) -> dict[str, set[str]]:
        """Upload and create batches of at most `batch_max_requests` lines; each id is in the cache
        database, with its keys, before this returns."""
        keys = sorted(requests)
        size = self.config.batch_max_requests
        jobs = {}
        for start in range(0, len(keys), size):
            chunk = {key: requests[key] for key in keys[start:start + size]}
            upload = await _call(client.files.create(file=("requests.jsonl", request_lines(chunk).encode("utf-8")),
                                                     purpose="batch"))
            batch = await _call(client.batches.create(input_file_id=upload.id, endpoint=ENDPOINT,
                                                      completion_window=COMPLETION_WINDOW))
            self.cache.put_pending(chunk, batch_id=batch.id, base_url=self.base_url)
            self.counts.submitted += 1
            jobs[batch.id] = set(chunk)
        return jobs

    async def _collect(self, client: Any, batch_id: str, keys: set[str]) -> dict[str, LineAnswer]:
        """Poll `batch_id` to its end, read its output and error files, commit what they answer."""
        batch, task = await self._poll(client, batch_id, len(keys))
        if batch is None:  # an open batch the server no longer knows (deleted, another account): ask again
            self.cache.close_batch(batch_id)
            return {key: LineAnswer(key, reason=f"batch {batch_id} is unknown to {self.base_url}") for key in keys}
        answered: dict[str, LineAnswer] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await _call(client.files.content(file_id))
                for _, line in parse_lines(content.text, file_id):
                    if isinstance(line, dict) and str(line["custom_id"]) in keys:
                        outcome = read_answer(line)
                        answered[outcome.key] = outcome
        why = _batch_failure(batch)
        for key in keys - answered.keys():
            answered[key] = LineAnswer(key, reason=f"batch {batch_id} {batch.status}: {why}",
                                       final=batch.status == "cancelled")
        self._commit(answered)
        self.cache.close_batch(batch_id)
        self._show(task, batch, sum(o.reason.startswith("expired") for o in answered.values()))
        return answered

    async def _poll(self, client: Any, batch_id: str, total: int) -> tuple[Any, TaskID | None]:
        """The finished batch (None when the server does not know it) and its progress line."""
        task = self.progress.add_task(f"batch {batch_id}", total=total) if self.progress else None
        while True:
            batch = await _retrieve(client, batch_id)
            if batch is None:
                return None, task
            self._show(task, batch)
            if batch.status in FINISHED:
                return batch, task
            await asyncio.sleep(self.config.batch_poll_s)

    def _show(self, task: TaskID | None, batch: Any, expired: int | None = None) -> None:
        """The progress line of a batch: its state, how many requests are done and failed, and once its
        files are read, how many expired."""
        if self.progress is None or task is None:
            return
        counts = batch.request_counts
        done, failed = (counts.completed, counts.failed) if counts else (0, 0)
        line = f"batch {batch.id} {batch.status}: {done} done, {failed} failed"
        self.progress.update(task, completed=done + failed,
                             description=line if expired is None else f"{line}, {expired} expired")

    def _commit(self, answered: Mapping[str, LineAnswer]) -> None:
        """Answers, and refusals the server would repeat, into the cache under their requests' keys."""
        entries: list[tuple[str, Mapping[str, Any], Outcome, Mapping[str, Any]]] = []
        for key, outcome in answered.items():
            request = self.cache.pending_request(key)
            if request is None:
                continue
            if outcome.answer is not None:
                entries.append((key, request, "answer", outcome.answer.to_cache()))
                self.counts.answered += 1
            elif outcome.refusal is not None and outcome.refusal.cacheable:
                entries.append((key, request, "error",
                                {"status": outcome.refusal.status, "message": outcome.refusal.message}))
            else:
                self.counts.failed += 1
                self.counts.expired += outcome.reason.startswith("expired")
        self.cache.put_many(entries)


def _batch_failure(batch: Any) -> str:
    """Why a batch left requests unanswered, in the API's words."""
    errors = getattr(batch.errors, "data", None) or []
    said = "; ".join(f"{e.code}: {e.message}" for e in errors[:3])
    return said or "no answer line for the request"


async def _retrieve(client: Any, batch_id: str) -> Any:
    """The batch `batch_id` as the server sees it now, or None when the server answers 404."""
    import openai

    try:
        return await _call(client.batches.retrieve(batch_id))
    except GeniesError as failure:
        if isinstance(failure.__cause__, openai.NotFoundError):
            return None
        raise


async def _call(request: Coroutine[Any, Any, T]) -> T:
    """One Batch API call (the SDK retries transient failures); a failure that remains stops the build
    with the server's words. Open batches stay in the cache database, so a rerun resumes them."""
    import openai

    try:
        return await request
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise GeniesError(f"the Batch API refused the credentials: {exc}", "check OPENAI_API_KEY and OPENAI_BASE_URL") from exc
    except openai.APIError as exc:
        raise GeniesError(f"a Batch API call failed: {exc}",
                          "run the build again to resume its open batches, or use --llm-mode live") from exc

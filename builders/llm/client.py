"""OpenAI-compatible chat clients: classify every failure, retry only the retryable ones.

Two transports speak the same protocol: plain aiohttp (default: about a quarter of the SDK's CPU per
request, which is what bounds throughput against fast servers) and the `openai` SDK (`transport =
"openai"`). The SDK's own retries are off (max_retries=0), so tenacity is the only retry layer and retries
never multiply. A 429 waits as long as its Retry-After says; other retryable failures (408, 409, 425,
5xx, timeouts, connection errors, bodies that are not a chat completion, empty answers) back off
exponentially with jitter, for a bounded number of attempts. The body is parsed here rather than by the
SDK, so garbage from a server surfaces as a retryable failure instead of an empty string.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from builders.errors import GeniesError
from builders.llm.limiter import Limiter

CACHEABLE_STATUSES = frozenset({400, 404, 413, 422})
FATAL_STATUSES = frozenset({401, 403})
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
BODY_CHARS = 300
INVALID_REQUEST = re.compile(
    r"invalid|validation error|input should be|extra inputs|not supported|unsupported|literal_error|bad request",
    re.IGNORECASE,
)


REFUSED, DNS, TLS, TIMEOUT, CONNECTION = "connection refused", "DNS failure", "TLS failure", "timeout", "connection error"


class RetryableError(Exception):
    """A failure worth trying again; `retry_after` is the server's requested wait in seconds, if any;
    `kind` says what failed on the way to the server (refused, DNS, TLS, timeout), empty for HTTP answers."""

    def __init__(self, reason: str, retry_after: float | None = None, kind: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.kind = kind


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__ or getattr(current, "os_error", None)
    return found


def connection_kind(exc: BaseException) -> str:
    """Which of refused / DNS / TLS / timeout a transport failure is, from the exception and its causes."""
    chain = _chain(exc)
    names = " ".join(type(e).__name__ for e in chain)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return REFUSED
    if any(isinstance(e, socket.gaierror) for e in chain) or "DNS" in names:
        return DNS
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSL" in names or "Certificate" in names:
        return TLS
    if any(isinstance(e, TimeoutError) for e in chain) or "Timeout" in names:
        return TIMEOUT
    return CONNECTION


def connection_failure(exc: BaseException, base_url: str) -> RetryableError:
    """A transport failure named by its kind and the server it was on the way to."""
    kind = connection_kind(exc)
    return RetryableError(f"{kind} at {base_url}: {exc}", kind=kind)


class RequestError(Exception):
    """The server refused this request; `cacheable` when the same request would always be refused."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.cacheable = status in CACHEABLE_STATUSES

    @property
    def about_response_format(self) -> bool:
        """The server refused the structured-output request itself: another mode may be accepted."""
        return mentions_response_format(self.message)


def mentions_response_format(message: str) -> bool:
    return "response_format" in message or "json_schema" in message


@dataclass(frozen=True)
class Answer:
    """A usable chat completion: non-empty text plus what the server reported about it."""

    text: str
    finish_reason: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int

    def to_cache(self) -> dict[str, Any]:
        return {"text": self.text, "finish_reason": self.finish_reason, "model": self.model,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}

    @classmethod
    def from_cache(cls, body: Mapping[str, Any]) -> Answer:
        return cls(body["text"], body.get("finish_reason"), body.get("model"),
                   int(body.get("prompt_tokens") or 0), int(body.get("completion_tokens") or 0))


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    if value := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def parse_completion(text: str) -> Answer:
    """The first choice of a chat completion body, or RetryableError saying what is wrong with it."""
    try:
        body = json.loads(text)
    except ValueError:
        raise RetryableError(f"malformed response body: {text[:80]!r}") from None
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise RetryableError(f"response is not a chat completion: {text[:80]!r}") from None
    if not isinstance(content, str) or not content.strip():
        raise RetryableError(f"empty answer (finish_reason={choice.get('finish_reason')!r})")
    usage = body.get("usage") or {}
    return Answer(content, choice.get("finish_reason"), body.get("model"),
                  int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


class ChatClient(Protocol):
    """One attempt at a chat completion: an `Answer`, or RetryableError / RequestError / GeniesError."""

    async def complete(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Answer: ...

    async def close(self) -> None: ...


class OpenAIChatClient:
    """The `openai` SDK (its own retries off) on its aiohttp transport.

    The body goes through `AsyncOpenAI.post` untouched and comes back as raw text, so any server's extra
    parameters (top_k, min_p...) pass through and garbage bodies are seen as such, not as empty models.
    """

    def __init__(self, base_url: str, api_key: str | None, timeout_s: float) -> None:
        import httpx2
        import openai  # deferred: the SDK takes about a second to import and most builds send nothing

        self._sdk, self._response_type, self._base_url = openai, httpx2.Response, base_url
        self._openai = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=0,
            http_client=openai.DefaultAioHttpClient(timeout=timeout_s),
        )

    async def complete(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Answer:
        openai = self._sdk
        try:
            response = await self._openai.post(
                "/chat/completions", body=dict(payload), cast_to=self._response_type,
                options={"headers": dict(headers)},
            )
        except openai.APIStatusError as exc:
            raise classify_status(exc.status_code, exc.response.headers, _error_message(exc)) from exc
        except openai.APIConnectionError as exc:
            raise connection_failure(exc, self._base_url) from exc
        return parse_completion(response.text)

    async def close(self) -> None:
        await self._openai.close()


class AiohttpChatClient:
    """The same wire protocol straight over aiohttp: about a quarter of the SDK's CPU per request.

    The default: against servers answering in milliseconds (vLLM, llama.cpp) the SDK's per-request
    overhead, not the model, bounds throughput.
    """

    def __init__(self, base_url: str, api_key: str | None, timeout_s: float) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def complete(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Answer:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout,
                                                  connector=aiohttp.TCPConnector(limit=0))
        try:
            async with self._session.post(self._url, json=payload, headers=dict(headers)) as response:
                text = await response.text(errors="replace")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise connection_failure(exc, self._url) from exc
        if response.status >= 300:
            raise classify_status(response.status, response.headers, text)
        return parse_completion(text)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


TRANSPORTS: dict[str, type] = {"aiohttp": AiohttpChatClient, "openai": OpenAIChatClient}


def make_client(transport: str, base_url: str, api_key: str | None, timeout_s: float) -> ChatClient:
    return TRANSPORTS[transport](base_url, api_key, timeout_s)


def _error_message(exc: Exception) -> str:
    try:
        return exc.response.text
    except Exception:  # a streamed or already-closed body: the SDK's own message is all there is
        return str(exc)


def classify_status(status: int, headers: Mapping[str, str], body: str) -> Exception:
    """The failure a status stands for, carrying the first BODY_CHARS characters of the server's words.

    A 5xx whose body says the request itself is invalid (llama-cpp-python answers an unknown
    `response_format` with HTTP 500 and a validation error) is a refusal, not a transient failure.
    """
    message = " ".join(body.split())[:BODY_CHARS]
    if status in FATAL_STATUSES:
        return GeniesError(
            f"the LLM server refused the credentials (HTTP {status}): {message}",
            "check OPENAI_API_KEY and OPENAI_BASE_URL",
        )
    if status >= 500 and INVALID_REQUEST.search(message):
        return RequestError(status, message)
    if status in RETRYABLE_STATUSES or status >= 500:
        return RetryableError(f"HTTP {status}: {message}" if message else f"HTTP {status}", retry_after_seconds(headers))
    return RequestError(status, message)


class _WaitRetryAfter(wait_base):
    """The server's Retry-After (plus up to 10% jitter) when given, else exponential backoff with jitter."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self.max_s = max_s
        self.fallback = wait_exponential_jitter(multiplier=initial_s, max=max_s, jitter=initial_s)

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        asked = _server_wait(error, self.max_s) if isinstance(error, RetryableError) else None
        return self.fallback(retry_state) if asked is None else asked


def _server_wait(error: RetryableError, max_s: float) -> float | None:
    if error.retry_after is None:
        return None
    return min(max_s, error.retry_after * (1 + 0.1 * random.random()))


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    initial_backoff_s: float = 0.5
    max_wait_s: float = 60.0


async def complete_with_retries(
    client: ChatClient,
    limiter: Limiter,
    payload: Mapping[str, Any],
    headers: Mapping[str, str],
    *,
    estimated_tokens: int,
    policy: RetryPolicy,
    on_retry: Callable[[RetryableError], None],
    store: Callable[[str, dict[str, Any]], Awaitable[None]],
) -> Answer:
    """Send until answered, refused, or out of attempts (then the last RetryableError is raised).

    Each attempt holds a concurrency slot while it is on the wire and until `store` has made its
    answer (or deterministic refusal) durable, never while it sleeps: so at most `concurrency`
    answers can be lost when the process is killed. The
    first attempt runs outside tenacity: most requests succeed at once, and tenacity's per-attempt
    bookkeeping would otherwise be a sizeable share of the CPU spent per request against fast servers.
    """

    async def attempt() -> Answer:
        async with limiter.slot(estimated_tokens) as reservation:
            try:
                answer = await client.complete(payload, headers)
            except RequestError as refused:
                if refused.cacheable:
                    await store("error", {"status": refused.status, "message": refused.message})
                raise
            reservation.used = answer.prompt_tokens + answer.completion_tokens or estimated_tokens
            await store("answer", answer.to_cache())
        return answer

    try:
        return await attempt()
    except RetryableError as error:
        if policy.max_attempts == 1:
            raise
        if error.kind == REFUSED:  # nothing listens there: one short retry (a restarting server), then fail
            on_retry(error)
            await asyncio.sleep(policy.initial_backoff_s)
            return await attempt()
        on_retry(error)
        asked = _server_wait(error, policy.max_wait_s)
        await asyncio.sleep(policy.initial_backoff_s * (1 + random.random()) if asked is None else asked)
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts - 1),
        wait=_WaitRetryAfter(2 * policy.initial_backoff_s, policy.max_wait_s),
        retry=retry_if_exception_type(RetryableError),
        before_sleep=lambda state: on_retry(state.outcome.exception()),
        reraise=True,
    )
    async for retry in retrying:
        with retry:
            return await attempt()

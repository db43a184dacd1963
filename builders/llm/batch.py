"""Batch files: the JSONL request and answer lines of OpenAI's Batch API, which `vllm run-batch` also
reads and writes.

A request line is `{"custom_id": KEY, "method": "POST", "url": "/v1/chat/completions", "body": PAYLOAD}`:
the custom id is the request's cache key and the body is exactly what a live call sends, so an answer
that comes back through a batch (the API's or one run offline on a GPU cluster) is committed under the
key a live answer would have had. An answer line is `{"custom_id", "response": {"status_code", "body"},
"error"}`; `read_answer` sorts it into an answer, a refusal (the same request would be refused again) or
a failure worth sending again (expired, 429, 5xx, an empty or unparseable completion).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builders.errors import GeniesError
from builders.llm.cache import RequestCache, request_key
from builders.llm.client import (
    Answer,
    RequestError,
    RetryableError,
    classify_status,
    parse_completion,
)

ENDPOINT = "/v1/chat/completions"
EXPIRED_CODE = "batch_expired"
EXAMPLES = 5


def payload_of(keyed: Mapping[str, Any]) -> dict[str, Any]:
    """The body of the chat completion a keyed request stands for (live and batch send the same)."""
    return {"model": keyed["model"], "messages": keyed["messages"], **keyed["params"]}


def request_line(key: str, keyed: Mapping[str, Any]) -> str:
    """One batch input line, JSON without a newline."""
    return json.dumps({"custom_id": key, "method": "POST", "url": ENDPOINT, "body": payload_of(keyed)},
                      ensure_ascii=False)


def request_lines(requests: Mapping[str, Mapping[str, Any]]) -> str:
    """A batch input file: one line per request, sorted by key (the same misses give the same bytes)."""
    return "".join(request_line(key, requests[key]) + "\n" for key in sorted(requests))


@dataclass(frozen=True)
class LineAnswer:
    """What one answer line says about request `key`: an `answer`, a `refusal` (HTTP status and message:
    asking again would be refused again), or neither: a failure said in `reason`, worth sending again
    unless `final` (its batch was cancelled)."""

    key: str
    answer: Answer | None = None
    refusal: RequestError | None = None
    reason: str = ""
    final: bool = False

    @property
    def retryable(self) -> bool:
        return self.answer is None and self.refusal is None and not self.final


def _error_message(error: Any) -> tuple[str, str | None]:
    """(message, code) of a line's `error`: OpenAI's {"code", "message"}, vLLM's ErrorResponse
    ({"error": {...}} or {"message", "code"}) or vLLM's plain string."""
    if isinstance(error, Mapping):
        nested = error.get("error")
        inner: Mapping[str, Any] = nested if isinstance(nested, Mapping) else error
        code = inner.get("code")
        return str(inner.get("message") or json.dumps(error)), None if code is None else str(code)
    return ("" if error is None else str(error)), None


def read_answer(line: Mapping[str, Any]) -> LineAnswer:
    """Sort one parsed answer line (OpenAI's or vLLM's format)."""
    key = str(line["custom_id"])
    response = line.get("response") or {}
    status = response.get("status_code")
    body = response.get("body")
    if status == 200 and body:
        try:
            return LineAnswer(key, answer=parse_completion(json.dumps(body)))
        except RetryableError as problem:
            return LineAnswer(key, reason=problem.reason)
    message, code = _error_message(line.get("error") or (body or {}).get("error"))
    if code == EXPIRED_CODE:
        return LineAnswer(key, reason=f"expired before the batch ran it: {message}")
    if not isinstance(status, int):
        return LineAnswer(key, reason=f"no response: {message or 'none given'}")
    failure = classify_status(status, {}, message)
    if isinstance(failure, RequestError):
        return LineAnswer(key, refusal=failure)
    return LineAnswer(key, reason=str(failure))


def parse_lines(text: str, source: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, parsed line) for each non-blank line; a line that is not a JSON object with a
    custom_id comes back as the problem, in words."""
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            yield number, f"{source}:{number}: not JSON: {raw[:80]!r}"
            continue
        if not isinstance(line, dict) or "custom_id" not in line:
            yield number, f"{source}:{number}: no custom_id: {raw[:80]!r}"
            continue
        yield number, line


@dataclass
class ImportReport:
    """What `import_answers` did with a file of answer lines. Only `committed` went into the cache."""

    committed: int = 0
    already_cached: int = 0
    unmatched: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return len(self.unmatched) + len(self.duplicates) + len(self.errors) + len(self.malformed)

    def lines(self) -> list[str]:
        """The report in words: counts, then a few examples of each problem."""
        said = [f"{self.committed:,} answers committed to the cache, {self.already_cached:,} were there already"]
        for name, items in (("custom_id matching no exported request", self.unmatched),
                            ("custom_id given more than once (none of them committed)", self.duplicates),
                            ("errors (not committed)", self.errors), ("unreadable lines", self.malformed)):
            if items:
                said.append(f"{len(items):,} {name}, e.g. " + "; ".join(items[:EXAMPLES]))
        return said


def import_answers(cache: RequestCache, text: str, source: str = "answers") -> ImportReport:
    """Validate batch answer lines and commit each answer to `cache` under its request's key.

    A custom_id must name a request this cache exported (`put_pending`) and appear once; the line must
    hold a usable chat completion. Anything else is reported and nothing of it is committed.
    """
    report = ImportReport()
    parsed = list(parse_lines(text, source))
    report.malformed = [problem for _, problem in parsed if isinstance(problem, str)]
    lines = [line for _, line in parsed if isinstance(line, dict)]
    seen = Counter(str(line["custom_id"]) for line in lines)
    report.duplicates = sorted(key for key, n in seen.items() if n > 1)
    for line in lines:
        key = str(line["custom_id"])
        if seen[key] > 1:
            continue
        request = cache.pending_request(key)
        if request is None or request_key(request) != key:
            report.unmatched.append(key)
            continue
        outcome = read_answer(line)
        if outcome.answer is None:
            report.errors.append(f"{key[:12]}: {outcome.refusal or outcome.reason}")
        elif cache.get(key) is not None:
            report.already_cached += 1
        else:
            cache.put(key, request, "answer", outcome.answer.to_cache())
            report.committed += 1
    return report


def write_requests(cache: RequestCache, requests: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """Write `requests` (key -> keyed request) as a batch input file and remember them in `cache`, so
    `import_answers` can later commit their answers."""
    cache.put_pending(requests)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(request_lines(requests), encoding="utf-8")
    except OSError as exc:
        raise GeniesError(f"cannot write the batch requests to {path}: {exc}", "pick a writable --out") from exc


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise GeniesError(f"cannot read the batch answers {path}: {exc}", "give the path of a JSONL file") from exc

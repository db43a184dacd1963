"""A local OpenAI-compatible chat server for tests and benchmarks, listening on 127.0.0.1 only.

It answers `/v1/chat/completions` and `/v1/models`, and the Batch API (`/v1/files` upload and content,
`/v1/batches` create, retrieve and cancel), and misbehaves on purpose: latency, 429 with
Retry-After, 500s, hangs past the client's timeout, malformed bodies and empty answers, either at
random rates (seeded, so a given request's n-th arrival always gets the same treatment) or scripted per
request. It counts arrivals and successful answers per request (the engine's `X-Genies-Request` header,
else a hash of the body), which is how tests prove that nothing was sent twice.

A batch goes validating -> in_progress -> completed once `batch_delay_s` has passed since it was created
(checked when it is retrieved); its lines are then answered as live requests would be (the custom_id
stands for the header), a scripted or random fault becoming an error line, `{"expired": True}` (or
`rate_expired`) an expired line, and the first `batch_failures` batches fail as a whole. `answer_batch`
does the same for a whole file at once, as `vllm run-batch` does offline.

In a test:   with LLMServer(ServerConfig(latency_s=0.01)) as server: ... server.url ... server.successes
Standalone:  python tests/llm_server.py --latency 0.05 --rate-429 0.1   (prints its base URL, then serves)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

HOST = "127.0.0.1"
STATE: web.AppKey[_State] = web.AppKey("state")
Behaviour = str | dict[str, Any]


@dataclass
class ServerConfig:
    """How the server behaves. `script` maps a regex, searched in the first user message, to behaviours
    for the 1st, 2nd, ... request matching it (the last one repeats; retries and re-asks of a request
    keep its first user message, so they advance the same list). A behaviour is an
    answer string or a dict: {"status": 429, "retry_after": 0.1}, {"status": 500}, {"malformed": True},
    {"hang": True}, {"empty": True}, {"not_completion": True}.
    `responder(body, request_id)`, when set, answers requests no script entry matched (return None to fall
    through to the random faults and the default answer): a hook for tests that need answers shaped by
    the request, e.g. by its JSON schema.
    `structured_modes`, when set, are the structured-output modes the server accepts (see
    builders.llm.structured.STRUCTURED_MODES; `prompt`, no response_format, is always accepted); any other
    `response_format` is refused with HTTP 500 and a validation error, as llama-cpp-python does."""

    model: str = "test-model"
    latency_s: float = 0.0
    rate_429: float = 0.0
    retry_after_s: float = 0.1
    rate_500: float = 0.0
    rate_malformed: float = 0.0
    rate_hang: float = 0.0
    hang_s: float = 3600.0
    seed: int = 0
    script: dict[str, list[Behaviour]] = field(default_factory=dict)
    responder: Callable[[dict[str, Any], str], Behaviour | None] | None = None
    structured_modes: tuple[str, ...] | None = None
    batch_delay_s: float = 0.0
    rate_expired: float = 0.0
    batch_failures: int = 0


def structured_mode_of(body: dict[str, Any]) -> str:
    """Which structured-output mode a request body uses."""
    response_format = body.get("response_format") or {}
    kind = response_format.get("type", "text")
    if kind == "json_object" and "schema" in response_format:
        return "json_object_schema"
    return {"text": "prompt"}.get(kind, kind)


def refuse_response_format(body: dict[str, Any]) -> Behaviour:
    """What llama-cpp-python's server answers a `response_format` type it does not know."""
    kind = (body.get("response_format") or {}).get("type")
    message = (f"1 validation error for CreateChatCompletionRequest\nresponse_format.type\n  Input should be "
               f"'text' or 'json_object' [type=literal_error, input_value={kind!r}]")
    return {"status": 500, "message": message}


def default_answer(messages: list[dict[str, Any]]) -> str:
    """A deterministic answer naming a hash of the conversation, so different requests get different text."""
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:12]
    last = str(messages[-1].get("content", ""))[:60] if messages else ""
    return f"answer {digest} to: {last}"


class _State:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.hits: Counter[str] = Counter()
        self.successes: Counter[str] = Counter()
        self.script_arrivals: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batches_finished = 0
        self.batch_seconds = 0.0  # time spent answering batch lines: the model's work, not the client's
        self.counter = 0

    def arrival(self, request_id: str) -> int:
        with self.lock:
            self.hits[request_id] += 1
            return self.hits[request_id]

    def succeeded(self, request_id: str) -> None:
        with self.lock:
            self.successes[request_id] += 1

    def random_behaviour(self, request_id: str, arrival: int) -> Behaviour | None:
        c = self.config
        u = int.from_bytes(hashlib.sha256(f"{c.seed}:{request_id}:{arrival}".encode()).digest()[:8], "big") / 2**64
        for rate, behaviour in ((c.rate_429, {"status": 429, "retry_after": c.retry_after_s}),
                                (c.rate_500, {"status": 500}), (c.rate_malformed, {"malformed": True}),
                                (c.rate_hang, {"hang": True}), (c.rate_expired, {"expired": True})):
            if u < rate:
                return behaviour
            u -= rate
        return None

    def scripted_behaviour(self, messages: list[dict[str, Any]]) -> Behaviour | None:
        user = next((str(m.get("content")) for m in messages if m.get("role") == "user"), "")
        for pattern, behaviours in self.config.script.items():
            if re.search(pattern, user):
                with self.lock:
                    self.script_arrivals[pattern] += 1
                    return behaviours[min(self.script_arrivals[pattern], len(behaviours)) - 1]
        return None


def _completion(config: ServerConfig, request_id: str, text: str | None, messages: list) -> dict[str, Any]:
    prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4
    return {
        "id": f"chatcmpl-{request_id[:16]}", "object": "chat.completion", "created": 0, "model": config.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text or "") // 4,
                  "total_tokens": prompt_tokens + len(text or "") // 4},
    }


async def _chat(request: web.Request) -> web.Response:
    state: _State = request.app[STATE]
    with state.lock:
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        return await _answer(request, state)
    finally:
        with state.lock:
            state.in_flight -= 1


def _behaviour(state: _State, body: dict[str, Any], raw: bytes, request_id: str) -> Behaviour | None:
    """How to treat one arrival of a request (live or a batch line): an answer text, a fault, or None for
    the default answer. Seeded choices follow the hash of the body's bytes."""
    config = state.config
    body_hash = hashlib.sha256(raw).hexdigest()
    arrival = state.arrival(request_id)
    accepted = (*config.structured_modes, "prompt") if config.structured_modes is not None else None
    refused = accepted is not None and structured_mode_of(body) not in accepted
    return ((refuse_response_format(body) if refused else None)
            or state.scripted_behaviour(body["messages"])
            or (config.responder(body, body_hash) if config.responder else None)
            or state.random_behaviour(body_hash, arrival))


async def _answer(request: web.Request, state: _State) -> web.Response:
    config = state.config
    raw = await request.read()
    try:
        body = json.loads(raw)
        messages = body["messages"]
    except (ValueError, KeyError):
        return web.json_response({"error": {"message": "body must be JSON with messages"}}, status=400)
    request_id = request.headers.get("X-Genies-Request") or hashlib.sha256(raw).hexdigest()
    behaviour = _behaviour(state, body, raw, request_id)
    if config.latency_s:
        await asyncio.sleep(config.latency_s)
    if isinstance(behaviour, str) or behaviour is None:
        state.succeeded(request_id)
        return web.json_response(_completion(config, request_id, behaviour or default_answer(messages), messages))
    return await _misbehave(state, request_id, behaviour, messages)


async def _misbehave(state: _State, request_id: str, behaviour: dict[str, Any], messages: list) -> web.Response:
    if behaviour.get("hang"):
        await asyncio.sleep(state.config.hang_s)
    if "status" in behaviour:
        headers = {"Retry-After": str(behaviour["retry_after"])} if "retry_after" in behaviour else {}
        error = {"error": {"message": behaviour.get("message", f"injected {behaviour['status']}")}}
        return web.json_response(error, status=behaviour["status"], headers=headers)
    if behaviour.get("malformed"):
        return web.Response(text='{"choices": [{"message": {"content": "trunc', content_type="application/json")
    if behaviour.get("not_completion"):
        return web.json_response({"result": "this is not a chat completion"})
    return web.json_response(_completion(state.config, request_id, "" if behaviour.get("empty") else None, messages))


async def _models(request: web.Request) -> web.Response:
    model = request.app[STATE].config.model
    return web.json_response({"object": "list", "data": [{"id": model, "object": "model", "owned_by": "tests"}]})


async def _stats(request: web.Request) -> web.Response:
    state: _State = request.app[STATE]
    with state.lock:
        return web.json_response({"hits": dict(state.hits), "successes": dict(state.successes),
                                  "batch_seconds": state.batch_seconds})


EXPIRED_LINE = {"code": "batch_expired",
                "message": "This request could not be executed before the completion window expired."}


def answer_line(state: _State, line: dict[str, Any]) -> dict[str, Any]:
    """The output line of one batch input line, in the Batch API's (and `vllm run-batch`'s) format."""
    key, body = line["custom_id"], line["body"]
    out: dict[str, Any] = {"id": f"batch_req_{key[:16]}", "custom_id": key, "response": None, "error": None}
    behaviour = _behaviour(state, body, json.dumps(body).encode(), key)
    if isinstance(behaviour, str) or behaviour is None:
        state.succeeded(key)
        text = behaviour or default_answer(body["messages"])
        out["response"] = {"status_code": 200, "request_id": key[:16],
                           "body": _completion(state.config, key, text, body["messages"])}
    elif behaviour.get("expired") or behaviour.get("hang"):
        out["error"] = EXPIRED_LINE
    elif "status" in behaviour:
        message = behaviour.get("message", f"injected {behaviour['status']}")
        out["response"] = {"status_code": behaviour["status"], "request_id": key[:16],
                           "body": {"error": {"message": message}}}
    else:  # malformed, not a completion, empty: a 200 whose body is no usable answer
        body_out = ({"result": "not a chat completion"} if not behaviour.get("empty")
                    else _completion(state.config, key, "", body["messages"]))
        out["response"] = {"status_code": 200, "request_id": key[:16], "body": body_out}
    return out


def answer_batch(state: _State, text: str) -> tuple[str, str]:
    """(output file, error file) for a whole input file, answered at once as `vllm run-batch` does."""
    files: dict[bool, list[str]] = {True: [], False: []}
    for raw in text.splitlines():
        if raw.strip():
            line = answer_line(state, json.loads(raw))
            files[(line["response"] or {}).get("status_code") == 200].append(json.dumps(line) + "\n")
    return "".join(files[True]), "".join(files[False])


def _new_id(state: _State, prefix: str) -> str:
    with state.lock:
        state.counter += 1
        return f"{prefix}-{state.counter:06d}"


def _file_object(file_id: str, data: bytes, purpose: str) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
            "filename": f"{file_id}.jsonl", "purpose": purpose, "status": "processed"}


async def _upload(request: web.Request) -> web.Response:
    state: _State = request.app[STATE]
    form = await request.post()
    upload = form["file"]
    data = upload.file.read() if hasattr(upload, "file") else str(upload).encode()
    file_id = _new_id(state, "file")
    state.files[file_id] = data
    return web.json_response(_file_object(file_id, data, str(form.get("purpose", "batch"))))


async def _file_content(request: web.Request) -> web.Response:
    state: _State = request.app[STATE]
    data = state.files.get(request.match_info["file_id"])
    if data is None:
        return web.json_response({"error": {"message": "no such file"}}, status=404)
    return web.Response(body=data, content_type="application/octet-stream")


def _store_file(state: _State, text: str) -> str | None:
    if not text:
        return None
    file_id = _new_id(state, "file")
    state.files[file_id] = text.encode()
    return file_id


def _advance(state: _State, batch: dict[str, Any]) -> None:
    """Move a batch on: in_progress at the first look, finished once the delay has passed."""
    if batch["status"] == "validating":
        batch["status"] = "in_progress"
        return
    if batch["status"] != "in_progress" or time.time() - batch["created_at_s"] < state.config.batch_delay_s:
        return
    state.batches_finished += 1
    if state.batches_finished <= state.config.batch_failures:
        batch.update(status="failed", errors={"object": "list", "data": [
            {"code": "injected_failure", "message": "the whole batch failed (injected)", "line": None}]})
        return
    started = time.perf_counter()
    output, errors = answer_batch(state, state.files[batch["input_file_id"]].decode())
    state.batch_seconds += time.perf_counter() - started
    expired = sum('"batch_expired"' in line for line in errors.splitlines())
    batch.update(status="expired" if expired else "completed", output_file_id=_store_file(state, output),
                 error_file_id=_store_file(state, errors),
                 request_counts={"total": batch["request_counts"]["total"], "completed": output.count("\n"),
                                 "failed": errors.count("\n")})


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if k != "created_at_s"}


async def _create_batch(request: web.Request) -> web.Response:
    state: _State = request.app[STATE]
    params = await request.json()
    data = state.files.get(params.get("input_file_id", ""))
    if data is None:
        return web.json_response({"error": {"message": "input_file_id names no file"}}, status=400)
    batch_id = _new_id(state, "batch")
    total = sum(1 for line in data.splitlines() if line.strip())
    state.batches[batch_id] = {
        "id": batch_id, "object": "batch", "endpoint": params["endpoint"], "input_file_id": params["input_file_id"],
        "completion_window": params["completion_window"], "status": "validating", "created_at": int(time.time()),
        "created_at_s": time.time(), "output_file_id": None, "error_file_id": None, "errors": None,
        "metadata": params.get("metadata"), "request_counts": {"total": total, "completed": 0, "failed": 0},
    }
    return web.json_response(_public(state.batches[batch_id]))


async def _retrieve_batch(request: web.Request) -> web.Response:
    state: _State = request.app[STATE]
    batch = state.batches.get(request.match_info["batch_id"])
    if batch is None:
        return web.json_response({"error": {"message": "no such batch"}}, status=404)
    _advance(state, batch)
    return web.json_response(_public(batch))


async def _cancel_batch(request: web.Request) -> web.Response:
    state: _State = request.app[STATE]
    batch = state.batches.get(request.match_info["batch_id"])
    if batch is None:
        return web.json_response({"error": {"message": "no such batch"}}, status=404)
    if batch["status"] in ("validating", "in_progress"):
        batch["status"] = "cancelled"
    return web.json_response(_public(batch))


def make_app(config: ServerConfig) -> web.Application:
    app = web.Application(client_max_size=256 * 1024**2)
    app[STATE] = _State(config)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/files", _upload)
    app.router.add_get("/v1/files/{file_id}/content", _file_content)
    app.router.add_post("/v1/batches", _create_batch)
    app.router.add_get("/v1/batches/{batch_id}", _retrieve_batch)
    app.router.add_post("/v1/batches/{batch_id}/cancel", _cancel_batch)
    app.router.add_get("/_stats", _stats)
    return app


class LLMServer:
    """The server in a background thread; `url` is the OpenAI base URL.

    The port is ephemeral unless given. Seeded faults and responder answers follow a hash of the request
    body, not the cache key (which holds the base URL), so outcomes do not depend on the port and test
    runs side by side never compete for one.
    """

    def __init__(self, config: ServerConfig | None = None, port: int = 0) -> None:
        self.config = config or ServerConfig()
        self.port = port
        self.app = make_app(self.config)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def hits(self) -> Counter[str]:
        return self.app[STATE].hits

    @property
    def successes(self) -> Counter[str]:
        return self.app[STATE].successes

    @property
    def max_in_flight(self) -> int:
        return self.app[STATE].max_in_flight

    @property
    def batches(self) -> dict[str, dict[str, Any]]:
        return self.app[STATE].batches

    def answer_batch(self, text: str) -> tuple[str, str]:
        """Answer a batch input file offline (output lines, error lines), as `vllm run-batch` would."""
        return answer_batch(self.app[STATE], text)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, HOST, self.port)
        self._loop.run_until_complete(site.start())
        port = self._runner.addresses[0][1]
        self.url = f"http://{HOST}:{port}/v1"
        self._started.set()
        self._loop.run_forever()

    def start(self) -> LLMServer:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


FAULT_FLAGS = ("--rate-429", "--retry-after", "--rate-500", "--rate-malformed", "--rate-hang")


def add_fault_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, latency: float = 0.0) -> None:
    """The server's latency and fault flags, shared with benchmarks/llm_engine.py which forwards them."""
    parser.add_argument("--latency", type=float, default=latency, help="seconds before each answer")
    for flag in FAULT_FLAGS:
        parser.add_argument(flag, type=float, default=0.1 if flag == "--retry-after" else 0.0)


def _parse_args(argv: list[str]) -> tuple[ServerConfig, int]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    add_fault_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-delay", type=float, default=0.0, help="seconds a batch takes to complete")
    args = parser.parse_args(argv)
    config = ServerConfig(latency_s=args.latency, rate_429=args.rate_429, retry_after_s=args.retry_after,
                          rate_500=args.rate_500, rate_malformed=args.rate_malformed, rate_hang=args.rate_hang,
                          seed=args.seed, batch_delay_s=args.batch_delay)
    return config, args.port


async def _serve_forever(config: ServerConfig, port: int) -> None:
    runner = web.AppRunner(make_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    print(f"http://{HOST}:{runner.addresses[0][1]}/v1", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    config, port = _parse_args(sys.argv[1:])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(config, port))

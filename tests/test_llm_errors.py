"""Transport failures are named by kind and server; a refused connection fails after one short retry."""

from __future__ import annotations

import asyncio
import socket

import pytest

from builders.llm.client import (
    DNS,
    REFUSED,
    RetryableError,
    RetryPolicy,
    complete_with_retries,
    connection_kind,
    make_client,
)
from builders.llm.limiter import Limiter


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("transport", ["aiohttp", "openai"])
def test_a_refused_connection_fails_fast_naming_the_server(transport) -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}/v1"
    retries: list[RetryableError] = []

    async def run() -> None:
        client = make_client(transport, base_url, None, 30.0)
        try:
            await complete_with_retries(
                client, Limiter(concurrency=1), {"model": "m", "messages": []}, {}, estimated_tokens=1,
                policy=RetryPolicy(max_attempts=6, initial_backoff_s=0.01), on_retry=retries.append,
                store=lambda *_: asyncio.sleep(0))
        finally:
            await client.close()

    with pytest.raises(RetryableError) as failed:
        asyncio.run(run())
    assert failed.value.kind == REFUSED and "127.0.0.1" in failed.value.reason
    assert len(retries) == 1, "one short retry, not six backed-off attempts"


def test_kinds_from_the_cause_chain() -> None:
    try:
        raise OSError("connect failed") from socket.gaierror(-2, "Name or service not known")
    except OSError as exc:
        assert connection_kind(exc) == DNS
    assert connection_kind(TimeoutError()) == "timeout"

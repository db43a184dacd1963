"""Throughput control: at most K requests in flight, and requests/tokens per minute under their limits.

Rate limits use token buckets that refill continuously and hold about one second of budget, so a run
starts at full speed but never bursts a minute's worth of requests at once. A request larger than the
bucket still goes through once the bucket is full (it leaves the bucket in debt), so a huge prompt
cannot deadlock a run. Tokens are reserved from an estimate and settled with the real usage afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class TokenBucket:
    """`per_minute` units per minute, at most `burst_s` seconds' worth held at once."""

    def __init__(self, per_minute: float, burst_s: float = 1.0) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    async def take(self, amount: float) -> None:
        """Wait until `amount` (or a full bucket, for amounts above capacity) is available, then take it."""
        async with self._lock:
            needed = min(amount, self.capacity)
            self._refill()
            while self.level < needed:
                await asyncio.sleep((needed - self.level) / self.rate)
                self._refill()
            self.level -= amount

    def settle(self, reserved: float, used: float) -> None:
        """Correct a reservation made from an estimate once the real amount is known."""
        self._refill()
        self.level = min(self.capacity, self.level + reserved - used)


class Limiter:
    """Concurrency, RPM and TPM limits for one event loop; `None` limits are off."""

    def __init__(self, concurrency: int, rpm: int | None = None, tpm: int | None = None) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._requests = TokenBucket(rpm) if rpm else None
        self._tokens = TokenBucket(tpm) if tpm else None

    @asynccontextmanager
    async def slot(self, estimated_tokens: int) -> AsyncIterator[Reservation]:
        """Hold one concurrency slot for one attempt; report real usage on the yielded reservation."""
        async with self._slots:
            if self._requests:
                await self._requests.take(1)
            if self._tokens:
                await self._tokens.take(estimated_tokens)
            reservation = Reservation(estimated_tokens)
            try:
                yield reservation
            finally:
                if self._tokens and reservation.used is not None:
                    self._tokens.settle(estimated_tokens, reservation.used)


class Reservation:
    """What an attempt reserved from the token budget, and what it really used (unknown until answered)."""

    def __init__(self, estimated: int) -> None:
        self.estimated = estimated
        self.used: int | None = None

"""How many requests may be in flight: adapted to what the server can take.

Many local servers (llama.cpp's, llama-cpp-python's) compute one request at a time and queue the rest; a
queued request's wait counts against the client's time-out. So the limit starts at `start` (1) and grows only
while the server keeps up:
- slow start: each answer whose latency stays within `tolerance` times the lowest latency seen adds one to the
  limit (so the limit doubles per round trip on a parallel server); the first answer that took longer (it queued)
  halves the limit and ends slow start;
- then additive: after each window of answers (twice the limit, at least 4) the window's rate (answers per
  second) is compared with the rate before the last step up; less than `gain` times better and the limit steps
  back and holds for `hold_windows` windows, otherwise it grows by one.
A time-out or 429 halves the limit (multiplicative decrease); a Retry-After pauses every sender.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class CapacityLimiter:
    maximum: int
    start: int = 1
    gain: float = 1.15  # a step up must raise throughput by 15 % to stay
    hold_windows: int = 4  # after a step back, wait this many windows before trying again
    limit: int = field(init=False)
    in_flight: int = field(init=False, default=0)
    peak: int = field(init=False, default=0)
    decreases: int = field(init=False, default=0)
    _paused_until: float = field(init=False, default=0.0)
    _window_start: float = field(init=False, default=0.0)
    _window_done: int = field(init=False, default=0)
    _prev: tuple[int, float] | None = field(init=False, default=None)  # (limit, rate) before the last step up
    tolerance: float = 1.8  # slow start: a latency up to this times the lowest seen still "holds"
    _slow_start: bool = field(init=False, default=True)  # +1 per answer while latency holds
    _min_latency: float = field(init=False, default=float("inf"))
    _hold: int = field(init=False, default=0)
    _cond: asyncio.Condition | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.limit = max(1, min(self.start, self.maximum))
        self.peak = self.limit
        self._window_start = time.monotonic()

    @property
    def cond(self) -> asyncio.Condition:
        if self._cond is None:  # created inside the running loop
            self._cond = asyncio.Condition()
        return self._cond

    async def acquire(self) -> None:
        async with self.cond:
            while True:
                wait = self._paused_until - time.monotonic()
                if wait > 0:
                    self.cond.release()
                    try:
                        await asyncio.sleep(wait)
                    finally:
                        await self.cond.acquire()
                    continue
                if self.in_flight < self.limit:
                    self.in_flight += 1
                    return
                await self.cond.wait()

    async def release(self, outcome: str, retry_after: float | None = None, latency: float | None = None) -> None:
        """`outcome`: 'ok' (an answer came back), 'overload' (time-out, 429, 503) or 'other'; `latency`: seconds
        the request was in flight (queue time at the server included)."""
        async with self.cond:
            self.in_flight -= 1
            now = time.monotonic()
            if retry_after:
                self._paused_until = max(self._paused_until, now + retry_after)
            if outcome == "overload":
                self._step(max(1, self.limit // 2), now, hold=True)
                self._slow_start, self._prev = False, None
                self.decreases += 1
            elif outcome == "ok" and self._slow_start and latency is not None:
                self._min_latency = min(self._min_latency, latency)
                if latency <= self._min_latency * self.tolerance:
                    if self.limit < self.maximum:  # latency holds: one more in flight (doubles per round trip)
                        self._step(self.limit + 1, now)
                else:  # requests start to queue at the server: halve, then grow only where throughput grows
                    self._slow_start = False
                    self._step(max(1, self.limit // 2), now, hold=True)
            elif outcome == "ok":
                self._window_done += 1
                if self._window_done >= max(2 * self.limit, 4):
                    self._end_window(now)
            self.cond.notify_all()

    def _end_window(self, now: float) -> None:
        rate = self._window_done / max(now - self._window_start, 1e-6)
        if self._prev is not None and self.limit > self._prev[0] and rate < self._prev[1] * self.gain:
            self._slow_start = False  # growing did not pay: step back and hold there
            self._step(self._prev[0], now, hold=True)
            self._prev = None
        elif self._hold > 0:
            self._hold -= 1
            self._step(self.limit, now)
        elif self.limit < self.maximum:
            self._prev = (self.limit, rate)
            self._step(self.limit + 1, now)
        else:
            self._step(self.limit, now)

    def _step(self, limit: int, now: float, hold: bool = False) -> None:
        self.limit = limit
        self.peak = max(self.peak, limit)
        self._window_start, self._window_done = now, 0
        if hold:
            self._hold = self.hold_windows

    def stats(self) -> dict[str, int]:
        return {"final_limit": self.limit, "peak_limit": self.peak, "decreases": self.decreases}

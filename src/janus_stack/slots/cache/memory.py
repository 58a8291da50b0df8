"""``memory://``: the cache slot inside one process, the embedded default.

One lock guards all state, so every operation is atomic with respect to the
others, exactly as one Lua script is on Redis. Expiry uses the monotonic
clock (a wall-clock jump neither revives nor kills entries) and is lazy: an
entry is dropped when it is next touched or when least-recently-used
eviction reaches it, which keeps each call O(1).

``?max_entries=`` bounds values and rate-limit buckets separately (LRU). An
evicted bucket counts as full again; the least recently touched bucket is
the one most likely to have refilled anyway. Semaphores are never evicted,
since forgetting a live lease would let more holders in than the limit;
they are swept of lapsed leases when their number grows.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import ClassVar

from janus_stack.slots.cache import Cache, Lease, RateDecision
from janus_stack.slots.params import check_params, int_param
from janus_stack.urls import SlotURL

DEFAULT_MAX_ENTRIES = 100_000
_OPTIONS = frozenset({"max_entries", "max_value_bytes"})


class MemoryCache(Cache):
    """The in-process cache: values, buckets and semaphores in dictionaries.

    Args:
        url: ``memory://`` with optional ``?max_entries=`` and ``?max_value_bytes=``.
        max_entries: overrides the URL's bound on values and on buckets.
        max_value_bytes: overrides the URL's cap on one value.
    """

    backend: ClassVar[str] = "memory"
    embedded: ClassVar[bool] = True
    hint: ClassVar[str] = "memory:// takes only ?max_entries= and ?max_value_bytes="

    def __init__(
        self,
        url: SlotURL,
        *,
        max_entries: int | None = None,
        max_value_bytes: int | None = None,
    ) -> None:
        check_params(url, _OPTIONS, hint=self.hint)
        super().__init__(url, max_value_bytes=max_value_bytes)
        if max_entries is None:
            max_entries = int_param(url, "max_entries", DEFAULT_MAX_ENTRIES)
        self.max_entries = max_entries
        self._lock = threading.Lock()
        # key -> (value, monotonic deadline or None)
        self._values: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        # key -> (tokens, monotonic time of that count); absent means full
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        # key -> {holder: monotonic deadline}
        self._leases: dict[str, dict[str, float]] = {}
        self._sweep_leases_at = max_entries

    def _open(self) -> None:
        """Nothing to connect; state starts empty and lives until ``close``."""

    def _close(self) -> None:
        with self._lock:
            self._values.clear()
            self._buckets.clear()
            self._leases.clear()

    # -- key/value ---------------------------------------------------------

    def _get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._values.get(key)
            if entry is None:
                return None
            if entry[1] is not None and entry[1] <= time.monotonic():
                del self._values[key]
                return None
            self._values.move_to_end(key)
            return entry[0]

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._lock:
            values = self._values
            values[key] = (value, None if ttl is None else time.monotonic() + ttl)
            values.move_to_end(key)
            if len(values) > self.max_entries:
                values.popitem(last=False)

    def _delete(self, key: str) -> bool:
        with self._lock:
            entry = self._values.pop(key, None)
        return entry is not None and (entry[1] is None or entry[1] > time.monotonic())

    # -- rate limits -------------------------------------------------------

    def _take(self, key: str, rate: float, burst: int, cost: int) -> RateDecision:
        with self._lock:
            now = time.monotonic()
            state = self._buckets.pop(key, None)
            if state is None:
                tokens = float(burst)
            else:
                tokens = min(float(burst), state[0] + max(0.0, now - state[1]) * rate)
            allowed = tokens >= cost
            if allowed:
                tokens -= cost
            if tokens < burst:
                self._buckets[key] = (tokens, now)
                if len(self._buckets) > self.max_entries:
                    self._buckets.popitem(last=False)
        retry_after = 0.0 if allowed else (cost - tokens) / rate
        return RateDecision(allowed, tokens, retry_after)  # positional: hot path

    # -- semaphores --------------------------------------------------------

    def _acquire(self, key: str, limit: int, lease_seconds: float, holder: str) -> float | None:
        with self._lock:
            now = time.monotonic()
            held = self._live(key, now)
            if holder not in held and len(held) >= limit:
                return None
            held[holder] = now + lease_seconds
            self._leases[key] = held
            if len(self._leases) > self._sweep_leases_at:
                self._sweep(now)
        return time.time() + lease_seconds

    def _release(self, lease: Lease) -> bool:
        with self._lock:
            held = self._live(lease.key, time.monotonic())
            if held.pop(lease.holder, None) is None:
                return False
            if not held:
                self._leases.pop(lease.key, None)
            return True

    def _renew(self, lease: Lease, lease_seconds: float) -> float | None:
        with self._lock:
            now = time.monotonic()
            held = self._live(lease.key, now)
            if lease.holder not in held:
                return None
            held[lease.holder] = now + lease_seconds
        return time.time() + lease_seconds

    def _holders(self, key: str) -> int:
        with self._lock:
            return len(self._live(key, time.monotonic()))

    def _live(self, key: str, now: float) -> dict[str, float]:
        """The live leases of ``key`` (lapsed ones dropped); a new dict if there are none."""
        held = self._leases.get(key)
        if held is None:
            return {}
        for holder in [h for h, deadline in held.items() if deadline <= now]:
            del held[holder]
        if not held:
            del self._leases[key]
        return held

    def _sweep(self, now: float) -> None:
        """Drop semaphores whose leases all lapsed; amortised by doubling the threshold."""
        for key in list(self._leases):
            self._live(key, now)
        self._sweep_leases_at = max(self.max_entries, 2 * len(self._leases))

"""The cache & limits slot: values with a TTL, token-bucket rate limits, leased semaphores.

The three share one slot because they share one problem: small pieces of
state that every process of a deployment must agree on, change atomically
and forget on their own when they expire. In-process (``memory://``) they
live behind one lock; on Redis each limiter step is one Lua script, so
concurrent clients can never interleave a read and a write.

Validation lives here once. A backend implements the underscore core
(``_get``/``_set``/``_delete``, ``_take``, ``_acquire``/``_release``/
``_renew``/``_holders``) and receives only well-formed arguments; every
convenience (JSON, ``take_or_raise``, the waiting ``semaphore``, ``probe``)
is built on that core.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from janus_stack.errors import (
    InvalidInputError,
    JanusError,
    PayloadTooLargeError,
    RateLimitedError,
)
from janus_stack.slots.base import Slot, load_backend
from janus_stack.slots.params import int_param
from janus_stack.urls import SlotURL

__all__ = [
    "ACCEPTED_SCHEMES",
    "BACKENDS",
    "DEFAULT_MAX_VALUE_BYTES",
    "MAX_KEY_LENGTH",
    "Cache",
    "Lease",
    "RateDecision",
    "open",
]

BACKENDS: Mapping[str, str] = MappingProxyType(
    {
        "memory": "cache.memory:MemoryCache",
        "redis": "cache.redis:RedisCache",
        "rediss": "cache.redis:RedisCache",
    }
)
ACCEPTED_SCHEMES: tuple[str, ...] = tuple(sorted(BACKENDS))

DEFAULT_MAX_VALUE_BYTES = 8 * 1024 * 1024
MAX_KEY_LENGTH = 1024
PROBE_PREFIX = "_doctor"

_FIRST_POLL = 0.01
_MAX_POLL = 0.25


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of one ``take`` from a token bucket.

    Attributes:
        allowed: whether the tokens were taken.
        remaining: tokens left in the bucket after this call (fractional while refilling).
        retry_after: seconds until ``cost`` tokens will be there; 0 when allowed.
    """

    allowed: bool
    remaining: float
    retry_after: float


@dataclass(slots=True)
class Lease:
    """One holder's place in a semaphore, valid until ``expires_at``.

    A lease that is neither released nor renewed lapses on its own, so a
    holder that dies frees its place. ``renew`` moves ``expires_at`` forward
    in place.

    Attributes:
        key: the semaphore.
        holder: the token naming this holder; one holder has at most one place per key.
        expires_at: when the lease lapses, Unix seconds by the backend's clock
            (the Redis server's for ``redis://``).
    """

    key: str
    holder: str
    expires_at: float


class Cache(Slot):
    """The contract of the cache slot; see the module docstring.

    Args:
        url: the slot URL; ``?max_value_bytes=`` caps one value (default 8 MiB).
        max_value_bytes: overrides the URL's cap.
    """

    slot: ClassVar[str] = "cache"

    def __init__(self, url: SlotURL, *, max_value_bytes: int | None = None) -> None:
        super().__init__(url)
        if max_value_bytes is None:
            max_value_bytes = int_param(url, "max_value_bytes", DEFAULT_MAX_VALUE_BYTES)
        self.max_value_bytes = max_value_bytes

    # -- key/value ---------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None`` if absent or expired."""
        self._require_open()
        value = self._get(_check_key(key))
        self.telemetry.cache_lookup("slot", value is not None)
        return value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``, replacing any value and TTL; ``ttl`` in seconds."""
        self._require_open()
        _check_key(key)
        if not isinstance(value, bytes):
            raise InvalidInputError(
                f"cache value for {key!r} must be bytes, not {type(value).__name__}",
                hint="encode text with .encode(), or use set_json for JSON values",
            )
        if len(value) > self.max_value_bytes:
            raise PayloadTooLargeError(
                f"cache value for {key!r} is {len(value)} bytes; the limit is "
                f"{self.max_value_bytes}",
                hint="store large payloads in the objects slot and cache their key",
            )
        self._set(key, value, None if ttl is None else _check_seconds("ttl", ttl))

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether a live value was there."""
        self._require_open()
        return self._delete(_check_key(key))

    def get_json(self, key: str) -> Any:
        """The JSON value under ``key``, or ``None`` if absent (as for a stored ``null``)."""
        raw = self.get(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise InvalidInputError(f"cache value for {key!r} is not JSON: {exc}") from exc

    def set_json(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` as compact UTF-8 JSON."""
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"cache value for {key!r} is not JSON-serialisable: {exc}"
            ) from exc
        self.set(key, text.encode(), ttl)

    # -- rate limits -------------------------------------------------------

    def take(self, key: str, *, rate: float, burst: int, cost: int = 1) -> RateDecision:
        """Take ``cost`` tokens from the bucket ``key`` if it holds them.

        The bucket holds at most ``burst`` tokens, starts full and refills at
        ``rate`` tokens per second. A refused take consumes nothing, so a
        caller may retry after ``retry_after``; ``cost=0`` only looks.
        """
        self._require_open()
        _check_key(key)
        rate = _check_seconds("rate", rate)
        _check_int("burst", burst, 1)
        _check_int("cost", cost, 0)
        if cost > burst:
            raise InvalidInputError(
                f"rate limit {key!r}: cost {cost} exceeds burst {burst}, so it could never pass"
            )
        return self._take(key, rate, burst, cost)

    def take_or_raise(self, key: str, *, rate: float, burst: int, cost: int = 1) -> RateDecision:
        """``take``, raising ``RateLimitedError`` with ``retry_after`` when refused."""
        decision = self.take(key, rate=rate, burst=burst, cost=cost)
        if not decision.allowed:
            raise RateLimitedError(
                f"rate limit {key!r} exceeded ({rate:g}/s, burst {burst}); "
                f"retry in {decision.retry_after:.3f} s",
                retry_after=decision.retry_after,
            )
        return decision

    # -- semaphores --------------------------------------------------------

    def acquire(
        self, key: str, *, limit: int, lease_seconds: float, holder: str | None = None
    ) -> Lease | None:
        """Take one of ``limit`` places in semaphore ``key``, or return ``None`` if all are held.

        Acquiring again with the same ``holder`` renews that holder's lease
        instead of taking a second place.
        """
        self._require_open()
        _check_key(key)
        _check_int("limit", limit, 1)
        lease_seconds = _check_seconds("lease_seconds", lease_seconds)
        if holder is None:
            holder = uuid.uuid4().hex
        else:
            _check_key(holder, what="holder")
        expires_at = self._acquire(key, limit, lease_seconds, holder)
        return None if expires_at is None else Lease(key, holder, expires_at)

    def release(self, lease: Lease) -> bool:
        """Give the place back; ``False`` if the lease had already lapsed or was released."""
        self._require_open()
        return self._release(_check_lease(lease))

    def renew(self, lease: Lease, lease_seconds: float) -> bool:
        """Extend a live lease to ``lease_seconds`` from now; ``False`` if it had lapsed."""
        self._require_open()
        _check_lease(lease)
        expires_at = self._renew(lease, _check_seconds("lease_seconds", lease_seconds))
        if expires_at is None:
            return False
        lease.expires_at = expires_at
        return True

    def holders(self, key: str) -> int:
        """How many live leases semaphore ``key`` has now."""
        self._require_open()
        return self._holders(_check_key(key))

    @contextmanager
    def semaphore(
        self,
        key: str,
        *,
        limit: int,
        lease_seconds: float,
        wait_timeout: float = 0.0,
        holder: str | None = None,
    ) -> Iterator[Lease]:
        """Hold a place in ``key`` for the ``with`` block, waiting up to ``wait_timeout``.

        Waiters poll with exponential back-off and jitter, so many of them do
        not hammer the server in lock-step. Work that may outlast
        ``lease_seconds`` should ``renew`` the yielded lease.

        Raises:
            RateLimitedError: no place became free within ``wait_timeout``.
        """
        if not isinstance(wait_timeout, int | float) or not wait_timeout >= 0:
            raise InvalidInputError(f"wait_timeout must be >= 0 seconds, not {wait_timeout!r}")
        deadline = time.monotonic() + wait_timeout
        delay = _FIRST_POLL
        while (
            lease := self.acquire(key, limit=limit, lease_seconds=lease_seconds, holder=holder)
        ) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RateLimitedError(
                    f"semaphore {key!r}: all {limit} places are held (waited {wait_timeout:g} s)",
                    retry_after=delay,
                )
            time.sleep(min(left, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * 2, _MAX_POLL)
        try:
            yield lease
        finally:
            self.release(lease)

    # -- janus doctor ------------------------------------------------------

    def probe(self) -> None:
        """Round-trip a value, a token and a lease under a throw-away ``_doctor`` key."""
        key = f"{PROBE_PREFIX}:{uuid.uuid4().hex}"
        payload = secrets.token_bytes(16)
        where = f"cache slot ({self.backend} at {self.url.redacted})"
        self.set(key, payload, ttl=60)
        if self.get(key) != payload:
            raise JanusError(f"{where}: the probe value did not read back")
        if not self.delete(key) or self.get(key) is not None:
            raise JanusError(f"{where}: the probe value survived its delete")
        if not self.take(key, rate=0.1, burst=1).allowed:
            raise JanusError(f"{where}: a fresh rate-limit bucket refused its first token")
        if self.take(key, rate=0.1, burst=1).allowed:
            raise JanusError(f"{where}: an empty rate-limit bucket allowed a token")
        lease = self.acquire(key, limit=1, lease_seconds=60)
        if lease is None or self.holders(key) != 1:
            raise JanusError(f"{where}: a fresh semaphore did not grant its one place")
        if not self.release(lease) or self.holders(key) != 0:
            raise JanusError(f"{where}: the probe lease was not released")

    # -- the backend core --------------------------------------------------

    def _get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        raise NotImplementedError

    def _delete(self, key: str) -> bool:
        raise NotImplementedError

    def _take(self, key: str, rate: float, burst: int, cost: int) -> RateDecision:
        raise NotImplementedError

    def _acquire(self, key: str, limit: int, lease_seconds: float, holder: str) -> float | None:
        """Grant or refresh ``holder``'s place; return its ``expires_at`` or ``None`` if full."""
        raise NotImplementedError

    def _release(self, lease: Lease) -> bool:
        raise NotImplementedError

    def _renew(self, lease: Lease, lease_seconds: float) -> float | None:
        """Extend a live lease; return the new ``expires_at`` or ``None`` if it had lapsed."""
        raise NotImplementedError

    def _holders(self, key: str) -> int:
        raise NotImplementedError


def open(url: SlotURL, **options: Any) -> Cache:
    """Construct (not connect) the cache backend for ``url``; call ``open()`` on it."""
    return load_backend(url, BACKENDS, Cache, **options)


def _check_key(key: object, *, what: str = "key") -> str:
    if isinstance(key, str) and 0 < len(key) <= MAX_KEY_LENGTH:
        return key
    if isinstance(key, str) and key:
        raise InvalidInputError(
            f"cache {what} {key[:40]!r}... is {len(key)} characters; the limit is {MAX_KEY_LENGTH}",
            hint="hash long keys (e.g. sha256 of the prompt) before caching",
        )
    raise InvalidInputError(f"cache {what} must be a non-empty string, not {key!r}")


def _check_seconds(name: str, value: object) -> float:
    """A positive, finite number of seconds (or tokens per second); NaN fails the range test."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise InvalidInputError(f"{name} must be a positive finite number, not {value!r}")


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, not {value!r}")


def _check_lease(lease: object) -> Lease:
    if not isinstance(lease, Lease):
        raise InvalidInputError(f"expected a Lease from acquire(), not {type(lease).__name__}")
    return lease

"""``redis://`` and ``rediss://``: the cache slot shared by every process of a deployment.

Values are plain strings with a PX expiry. Each limiter step is one Lua
script (``lua/*.lua``) that reads the server's clock with ``TIME``, so the
read-modify-write is atomic and clients with skewed clocks agree. Scripts
are registered once per client and run by SHA, reloading themselves if the
server's script cache was flushed.

Every key lives under ``?prefix=`` (default ``janus``) and a capability
tag, ``<prefix>:kv:<key>``, ``<prefix>:rl:<key>``, ``<prefix>:sem:<key>``,
so one key name can serve all three without a type clash and a deployment
can share a Redis with others.

A dropped connection is retried once (a pooled socket may just be stale);
after that a ``SlotUnavailableError`` names the redacted URL. A retried
``take`` may have consumed its tokens twice, which errs on the side of
limiting.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from importlib import resources
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry

from janus_stack.errors import ClosedError, JanusError, SlotUnavailableError, SlotURLError
from janus_stack.slots.cache import Cache, Lease, RateDecision
from janus_stack.urls import SlotURL

DEFAULT_PREFIX = "janus"
DEFAULT_SOCKET_TIMEOUT = 5.0
_OWN_OPTIONS = frozenset({"prefix", "max_value_bytes"})
_SCRIPTS = ("take", "acquire", "release", "renew", "holders")

P = ParamSpec("P")
R = TypeVar("R")


def _translated(
    method: Callable[Concatenate[RedisCache, P], R],
) -> Callable[Concatenate[RedisCache, P], R]:
    """Turn redis-py's exceptions into Janus errors naming the slot and redacted URL."""

    @functools.wraps(method)
    def wrapper(self: RedisCache, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise SlotUnavailableError(
                f"cache slot: lost the connection to redis at {self.url.redacted}: {exc}",
                hint=self.hint,
            ) from exc
        except redis.RedisError as exc:
            raise JanusError(
                f"cache slot: redis at {self.url.redacted} refused {method.__name__[1:]}: {exc}"
            ) from exc

    return wrapper


def load_script(name: str) -> str:
    """The source of one of the bundled Lua scripts (``take``, ``acquire`` …)."""
    source = resources.files("janus_stack.slots.cache") / "lua" / f"{name}.lua"
    return source.read_text(encoding="utf-8")


class RedisCache(Cache):
    """The cache slot on Redis.

    Args:
        url: ``redis://[:password@]host:6379/0?prefix=janus``; other query
            options (``socket_timeout``, ``max_connections`` …) go to redis-py.
        max_value_bytes: overrides the URL's cap on one value.
        socket_timeout: seconds to wait for a connect or a reply, unless the URL says.
    """

    backend: ClassVar[str] = "redis"
    hint: ClassVar[str] = "check that Redis is running and the URL's host, port, password and db"

    def __init__(
        self,
        url: SlotURL,
        *,
        max_value_bytes: int | None = None,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    ) -> None:
        super().__init__(url, max_value_bytes=max_value_bytes)
        query = url.query
        self.prefix = query.get("prefix", DEFAULT_PREFIX)
        if not self.prefix or any(c.isspace() for c in self.prefix):
            raise SlotURLError(f"cache slot: ?prefix= in {url.redacted!r} must be a non-empty word")
        self.socket_timeout = socket_timeout
        self._kv = f"{self.prefix}:kv:"
        self._rl = f"{self.prefix}:rl:"
        self._sem = f"{self.prefix}:sem:"
        self._client: redis.Redis[bytes] | None = None
        self._scripts: dict[str, Script] = {}

    def _client_url(self) -> str:
        """The resolved URL minus the options redis-py does not know."""
        parts = urlsplit(self.url.resolved)
        passed = {k: v for k, v in self.url.query.items() if k not in _OWN_OPTIONS}
        return urlunsplit(parts._replace(query=urlencode(passed)))

    def _open(self) -> None:
        try:
            client: redis.Redis[bytes] = redis.Redis.from_url(
                self._client_url(),
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                retry=Retry(ExponentialBackoff(cap=0.25, base=0.025), retries=1),
            )
        except ValueError as exc:
            raise SlotURLError(
                f"cache slot: {self.url.redacted!r} is not a usable redis URL: {exc}"
            ) from exc
        try:
            client.ping()
            scripts = {name: client.register_script(load_script(name)) for name in _SCRIPTS}
        except TypeError as exc:
            client.close()
            raise SlotURLError(
                f"cache slot: {self.url.redacted!r} has an option redis-py does not know: {exc}"
            ) from exc
        except BaseException:
            client.close()
            raise
        self._client, self._scripts = client, scripts

    def _close(self) -> None:
        client, self._client, self._scripts = self._client, None, {}
        if client is not None:
            client.close()

    def _redis(self) -> redis.Redis[bytes]:
        client = self._client
        if client is None:  # closed by another thread since _require_open
            raise ClosedError(f"cache slot ({self.backend}) was closed while in use")
        return client

    def _run(self, script: str, key: str, *args: Any) -> Any:
        return self._scripts[script](keys=[key], args=args, client=self._redis())

    # -- key/value ---------------------------------------------------------

    @_translated
    def _get(self, key: str) -> bytes | None:
        return self._redis().get(self._kv + key)

    @_translated
    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        px = None if ttl is None else max(1, math.ceil(ttl * 1000))
        self._redis().set(self._kv + key, value, px=px)

    @_translated
    def _delete(self, key: str) -> bool:
        return bool(self._redis().delete(self._kv + key))

    # -- rate limits -------------------------------------------------------

    @_translated
    def _take(self, key: str, rate: float, burst: int, cost: int) -> RateDecision:
        allowed, remaining, retry_after = self._run("take", self._rl + key, rate, burst, cost)
        return RateDecision(
            allowed=bool(allowed), remaining=float(remaining), retry_after=float(retry_after)
        )

    # -- semaphores --------------------------------------------------------

    @_translated
    def _acquire(self, key: str, limit: int, lease_seconds: float, holder: str) -> float | None:
        expires_ms = self._run("acquire", self._sem + key, limit, _ms(lease_seconds), holder)
        return None if expires_ms is None else int(expires_ms) / 1000

    @_translated
    def _release(self, lease: Lease) -> bool:
        return bool(self._run("release", self._sem + lease.key, lease.holder))

    @_translated
    def _renew(self, lease: Lease, lease_seconds: float) -> float | None:
        expires_ms = self._run("renew", self._sem + lease.key, _ms(lease_seconds), lease.holder)
        return None if expires_ms is None else int(expires_ms) / 1000

    @_translated
    def _holders(self, key: str) -> int:
        return int(self._run("holders", self._sem + key))


def _ms(seconds: float) -> int:
    """Whole milliseconds, at least one, so a short lease is never a zero-length one."""
    return max(1, math.ceil(seconds * 1000))

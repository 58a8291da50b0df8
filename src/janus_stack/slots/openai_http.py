"""What the OpenAI-compatible HTTP backends (``llm`` and ``embeddings``) share.

Both slots reach ``openai+http(s)://host:port/v1`` servers with httpx and
retry the same transient failures the same way: connection errors,
timeouts and the statuses in ``RETRYABLE``, after an exponential backoff
with jitter or the server's ``Retry-After``. Each slot keeps its own retry
loop (the llm's streams and may not retry after the first token) and its own
error messages; this module holds the parts that are the same.
"""

from __future__ import annotations

import random
from urllib.parse import urlsplit, urlunsplit

import httpx

from janus_stack.errors import (
    ConfigError,
    InvalidInputError,
    JanusError,
    PayloadTooLargeError,
    RateLimitedError,
    SlotUnavailableError,
    SlotURLError,
)
from janus_stack.slots.params import display_url
from janus_stack.urls import SlotURL

__all__ = [
    "MAX_DELAY",
    "RETRYABLE",
    "backoff_delay",
    "base_url",
    "retry_after_seconds",
    "server_message",
    "status_error",
]

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_DELAY = 30.0


def base_url(url: SlotURL) -> str:
    """The ``http(s)://host:port/v1/`` base of an ``openai+http(s)://`` slot URL.

    A key written as the URL's user or password is refused: it belongs in
    ``?api_key=`` (where ``env:``/``file:`` references work and redaction knows it).
    """
    parts = urlsplit(url.resolved)
    if parts.username or parts.password:
        raise SlotURLError(
            f"{url.slot} slot: put the key of {display_url(url)!r} in ?api_key=, not in the host"
        )
    scheme = parts.scheme.removeprefix("openai+")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/", "", ""))


def backoff_delay(backoff: float, retry: int, retry_after: float | None) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first), at most ``MAX_DELAY``.

    The server's ``Retry-After`` when it sent one; otherwise ``backoff`` doubled
    for each earlier retry, with ±25 % jitter so clients do not retry in step.
    """
    if retry_after is not None:
        return min(retry_after, MAX_DELAY)
    base: float = backoff * 2 ** (retry - 1)
    return min(base * (0.75 + random.random() / 2), MAX_DELAY)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds, or ``None`` if absent or an HTTP date."""
    text = response.headers.get("retry-after")
    if text is None:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        return None


def server_message(response: httpx.Response) -> str:
    """The error text of a failed response (OpenAI's ``error.message``, FastAPI's ``detail`` …)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body))
        if isinstance(error, dict):
            error = error.get("message", error)
        return str(error)[:300]
    return str(body)[:300]


def status_error(
    response: httpx.Response,
    *,
    slot: str,
    where: str,
    attempts: int,
    backoff: float,
    unavailable: type[SlotUnavailableError],
    hint: str,
    too_large_hint: str,
    rejected_hint: str | None = None,
) -> JanusError:
    """The error for a failed response that will not be retried (again).

    A refused key or a 404 is the configuration's fault (``ConfigError``), 429
    a ``RateLimitedError`` carrying when to come back, 413 and other 4xx the
    input's fault, anything else the server's (``unavailable``, with ``hint``).

    Args:
        slot: the slot named at the start of the message (``llm``, ``embeddings``).
        where: the model and redacted server, as the message shows them.
        attempts: how many requests were sent.
        backoff: the backend's first retry delay, to suggest a wait on 429.
        too_large_hint: what to shrink after a 413.
        rejected_hint: what to change after another 4xx, if anything helps.
    """
    status = response.status_code
    detail = server_message(response)
    if status in (401, 403):
        return ConfigError(
            f"{slot} slot: {where} refused the API key ({status}): {detail}",
            hint="set ?api_key=env:NAME (or file:/path) to a key the server accepts",
        )
    if status == 404:
        return ConfigError(
            f"{slot} slot: {where} answered 404: {detail}",
            hint="the URL should end in /v1 and ?model= name a model the server serves",
        )
    if status == 429:
        return RateLimitedError(
            f"{slot} slot: {where} is rate limiting (429 after {attempts} attempts): {detail}",
            retry_after=retry_after_seconds(response) or backoff * 2**attempts,
        )
    if status == 413:
        return PayloadTooLargeError(
            f"{slot} slot: {where} refused the request as too large (413): {detail}",
            hint=too_large_hint,
        )
    if 400 <= status < 500:
        return InvalidInputError(
            f"{slot} slot: {where} rejected the request ({status}): {detail}", hint=rejected_hint
        )
    return unavailable(
        f"{slot} slot: {where} failed with {status} after {attempts} attempt(s): {detail}",
        hint=hint,
    )

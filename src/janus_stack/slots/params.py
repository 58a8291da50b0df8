"""Query options of a slot URL (``?timeout=30&retries=2``), read and checked once.

Every backend reads its options in its constructor, so a typo or a bad value
fails at start-up with a ``SlotURLError`` that names the slot (``url.slot``),
the option and the redacted URL, instead of being silently ignored.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from janus_stack.errors import SlotURLError
from janus_stack.urls import SlotURL

__all__ = ["check_params", "choice_param", "display_url", "float_param", "int_param"]


def display_url(url: SlotURL) -> str:
    """``url.redacted``, keeping the ``//`` of ``scheme:///path`` that urllib's redaction drops."""
    text = url.redacted
    prefix = f"{url.scheme}:"
    if url.raw.startswith(prefix + "//") and not text.startswith(prefix + "//"):
        text = prefix + "//" + text[len(prefix) :]
    return text


def check_params(url: SlotURL, known: Collection[str], *, hint: str | None = None) -> None:
    """Refuse query parameters a backend does not know, so a typo is not silently ignored."""
    unknown = sorted(set(url.query) - set(known))
    if unknown:
        raise SlotURLError(
            f"{url.slot} slot: unknown option(s) {', '.join('?' + k for k in unknown)} in "
            f"{display_url(url)!r}; accepted: {', '.join(sorted(known)) or 'none'}",
            hint=hint,
        )


def int_param(url: SlotURL, name: str, default: int, minimum: int = 1) -> int:
    """An integer ``?name=`` of at least ``minimum``; ``default`` when absent."""
    text = url.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise SlotURLError(
            f"{url.slot} slot: ?{name}={text!r} in {display_url(url)!r} "
            f"must be an integer >= {minimum}"
        )
    return value


def float_param(url: SlotURL, name: str, default: float, *, minimum: float | None = None) -> float:
    """A finite number ``?name=``: positive, or at least ``minimum`` when one is given.

    NaN and infinity are refused: a timeout or a lease of either is never meant.
    """
    text = url.query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    in_range = value > 0 if minimum is None else value >= minimum
    if not in_range or math.isinf(value):
        bound = "a positive number" if minimum is None else f"a number >= {minimum:g}"
        raise SlotURLError(
            f"{url.slot} slot: ?{name}={text!r} in {display_url(url)!r} must be {bound}"
        )
    return value


def choice_param(url: SlotURL, name: str, choices: tuple[str, ...]) -> str:
    """An enumerated ``?name=``; the first choice is the default."""
    value = url.query.get(name, choices[0])
    if value not in choices:
        raise SlotURLError(
            f"{url.slot} slot: ?{name}={value!r} in {display_url(url)!r}; "
            f"accepted: {', '.join(choices)}"
        )
    return value

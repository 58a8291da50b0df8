"""Server-sent events and OpenAI chat-completion chunks, parsed by hand over httpx lines.

SSE (WHATWG): lines ``field: value``; ``data`` lines accumulate (joined by
newlines) until a blank line dispatches the event; lines starting with
``:`` are comments (keep-alives); a single space after the colon is dropped;
CR, LF and CRLF all end a line. An event still pending when the body ends
is dispatched too (some servers omit the last blank line).

A chat chunk is ``{"choices": [{"delta": {"role"?, "content"?}, "finish_reason"?}],
"model"?, "usage"?}``. Servers differ: the first chunk may carry only the
role, content may be ``""`` or ``null``, usage may come in the last chunk
(with ``choices: []``) or never, ``finish_reason`` may come with the last
text or in a chunk of its own, and the stream ends with ``data: [DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

DONE = "[DONE]"


@dataclass(frozen=True)
class Chunk:
    """What one ``data:`` event of a chat stream contributes."""

    text: str = ""
    finish_reason: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


def iter_events(lines: Iterable[str]) -> Iterator[str]:
    """Yield the ``data`` of each SSE event (``event:``/``id:``/``retry:`` are ignored)."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
    if data:
        yield "\n".join(data)


def parse_chunk(payload: str) -> Chunk:
    """Interpret one event's JSON; raise ValueError (or TypeError) when it is not a chat chunk."""
    body: Any = json.loads(payload)
    if not isinstance(body, dict):
        raise TypeError(f"expected a JSON object, got {type(body).__name__}")
    if "error" in body:
        return Chunk(error=_error_text(body["error"]))
    choices = body.get("choices") or []
    if not isinstance(choices, list):
        raise TypeError("'choices' is not a list")
    text, finish = "", None
    if choices:
        choice = choices[0]
        if not isinstance(choice, dict):
            raise TypeError("a choice is not an object")
        delta = choice.get("delta") or choice.get("message") or {}
        if not isinstance(delta, dict):
            raise TypeError("'delta' is not an object")
        content = delta.get("content")
        if content is None:
            content = choice.get("text")  # a completions-style server
        if content is not None and not isinstance(content, str):
            raise TypeError(f"'content' is {type(content).__name__}, not a string")
        text = content or ""
        finish = choice.get("finish_reason") or None
    prompt, produced = _usage(body.get("usage"))
    model = body.get("model")
    return Chunk(
        text=text,
        finish_reason=str(finish) if finish is not None else None,
        model=model if isinstance(model, str) and model else None,
        prompt_tokens=prompt,
        completion_tokens=produced,
    )


def parse_whole(body: Any) -> Chunk:
    """A non-streamed ``chat.completion`` (a server that ignored ``stream: true``)."""
    if not isinstance(body, dict):
        raise TypeError(f"expected a JSON object, got {type(body).__name__}")
    if "error" in body:
        return Chunk(error=_error_text(body["error"]))
    if not body.get("choices"):
        raise ValueError("the response has no choices")
    return parse_chunk(json.dumps(body))


def _usage(usage: object) -> tuple[int | None, int | None]:
    if not isinstance(usage, dict):
        return None, None
    prompt, produced = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (
        prompt if isinstance(prompt, int) and prompt >= 0 else None,
        produced if isinstance(produced, int) and produced >= 0 else None,
    )


def _error_text(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error)[:300]

"""``none://`` (alias ``extractive://``): the default, no language model at all.

Janus works without a model: answers are extractive (quoted chunks with
citations). Callers check ``configured`` and take that path; a call to
``complete``/``stream`` anyway is an ``LLMUnavailableError`` saying how to
configure a model, so a chain may end with ``none://`` harmlessly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from janus_stack.slots.llm import LanguageModel
from janus_stack.slots.llm.types import LLMUnavailableError, Request, Usage
from janus_stack.slots.params import check_params
from janus_stack.urls import SlotURL

HINT = (
    "set the llm slot, e.g. JANUS_LLM_URL=openai+http://127.0.0.1:8080/v1, or run "
    "`janus models install gemma-270m` for a small local model"
)


class NoLanguageModel(LanguageModel):
    """No model configured; see the module docstring."""

    backend: ClassVar[str] = "none"
    embedded: ClassVar[bool] = True
    configured: ClassVar[bool] = False
    hint: ClassVar[str] = HINT

    def __init__(self, url: SlotURL, **options: int) -> None:
        super().__init__(url, **options)
        check_params(url, set())

    @property
    def model(self) -> str:
        return "none"

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def probe(self) -> None:
        """Nothing to probe: 'no model configured' is a healthy state."""
        self._require_open()

    def _generate(self, request: Request) -> Iterator[str | Usage]:
        raise LLMUnavailableError("llm slot: no model configured (none://)", hint=HINT)

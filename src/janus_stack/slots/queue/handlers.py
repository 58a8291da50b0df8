"""The handler registry: which task names a process can run, and how hard to try each.

Kept apart from the ledger-side state machine (:mod:`.tasks`) because it is
what applications touch: they register handlers on a :class:`TaskHandlers`
and hand it to the queue, never seeing a ``tasks`` row.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from janus_stack.errors import InvalidInputError

RESERVED_PREFIX = "janus."

Handler = Callable[[dict[str, Any]], dict[str, Any] | None]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class TaskOptions:
    """How hard to try a task: attempts in total and the exponential backoff between them."""

    max_attempts: int = 3
    backoff_base: float = 1.0
    backoff_max: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.backoff_base < 0 or self.backoff_max < self.backoff_base:
            raise InvalidInputError(
                f"backoff must satisfy 0 <= base <= max, got base={self.backoff_base} "
                f"max={self.backoff_max}"
            )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.backoff_base * 2 ** max(attempt - 1, 0), self.backoff_max))


class TaskHandlers:
    """The task names a process can run, with their options.

    An explicit object instead of import-time decorators bound to a global
    registry: two queues in one process (or one test and the next) never see
    each other's handlers.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Handler, TaskOptions]] = {}

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        max_attempts: int = 3,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
    ) -> None:
        if not name or len(name) > 200:
            raise InvalidInputError(f"task name {name!r} must be 1 to 200 characters")
        if name.startswith(RESERVED_PREFIX):
            raise InvalidInputError(
                f"task name {name!r} uses the reserved prefix {RESERVED_PREFIX!r}",
                hint="pick another name; janus.* tasks are built in",
            )
        if name in self._entries:
            raise InvalidInputError(f"task {name!r} is already registered")
        self._entries[name] = (handler, TaskOptions(max_attempts, backoff_base, backoff_max))

    def task(self, name: str, **options: Any) -> Callable[[H], H]:
        """Decorator form of ``register``, taking the same keyword options."""

        def decorate(handler: H) -> H:
            self.register(name, handler, **options)
            return handler

        return decorate

    def get(self, name: str) -> tuple[Handler, TaskOptions] | None:
        return self._entries.get(name)

    def names(self) -> builtins.list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

"""Every error Janus raises on purpose.

Callers catch ``JanusError`` at the edges (CLI, API) and show its message;
anything else is a bug and surfaces as one. Messages say what was wrong,
where, and what to do about it.

    JanusError
    ├── ConfigError            bad settings file, variable or flag
    │   └── SlotURLError       unknown scheme / malformed URL for a slot
    ├── SlotUnavailableError   a backend could not be opened or reached
    ├── HomeLockedError        another process owns JANUS_HOME
    ├── NotFoundError          an object, point, node or task does not exist
    ├── InvalidInputError      a value given to a slot is unusable
    │   └── PayloadTooLargeError
    ├── ConflictError          the request contradicts the current state (resume a finished run)
    ├── RateLimitedError       a limiter refused; carries retry_after seconds
    ├── ClosedError            a slot was used after close()
    └── IntegrityError         a store disagrees with itself (broken hash chain, …)
"""

from __future__ import annotations

from collections.abc import Mapping


class JanusError(Exception):
    """Base class: an expected failure with a message fit for a user."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(JanusError):
    """The settings are unusable."""


class SlotURLError(ConfigError):
    """A slot URL has an unknown scheme or cannot be parsed."""


class SlotUnavailableError(JanusError):
    """A backend could not be opened or its server could not be reached."""


class HomeLockedError(JanusError):
    """Another process holds the lock on JANUS_HOME."""

    def __init__(self, message: str, *, owner_pid: int | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.owner_pid = owner_pid


class NotFoundError(JanusError):
    """The requested item does not exist."""


class InvalidInputError(JanusError):
    """A value handed to Janus cannot be used as given."""


class PayloadTooLargeError(InvalidInputError):
    """A payload exceeds a configured size limit."""


class ConflictError(JanusError):
    """The request is well formed but the thing it acts on is in a state that forbids it.

    ``details`` names that thing and its state (e.g. ``{"run": ID, "state": "done"}``);
    the API adds them to its 409 body so a client can tell which state it ran into.
    """

    def __init__(
        self, message: str, *, details: Mapping[str, str] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.details: dict[str, str] = dict(details or {})


class RateLimitedError(JanusError):
    """A rate or concurrency limit refused the request."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClosedError(JanusError):
    """A slot was used after it was closed."""


class IntegrityError(JanusError):
    """A store contradicts itself, e.g. a broken hash chain."""

"""What every slot backend shares: explicit open/close and backend lookup by URL scheme.

Constructors do no I/O so that a misconfigured slot fails at ``open()``,
where the error can name the slot and the redacted URL. Backends are
imported lazily: a user of the embedded defaults never imports the server
clients, and a missing optional client becomes an actionable message.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

from janus_stack.errors import ClosedError, JanusError, SlotUnavailableError, SlotURLError
from janus_stack.telemetry import Telemetry
from janus_stack.urls import SlotURL


class Slot:
    """Base of every backend: a URL, an ``open()`` that connects, a ``close()``.

    ``embedded`` backends need no server; ``single_writer`` ones (Qdrant Edge,
    ladybug) allow one process per data folder, so the ``Janus`` context takes
    the JANUS_HOME lock before opening them. Subclasses implement ``_open``
    and ``_close``; ``open`` is idempotent and
    turns any failure of ``_open`` that is not already a Janus error into a
    ``SlotUnavailableError`` naming the slot, backend and redacted URL.
    """

    slot: ClassVar[str] = "slot"
    backend: ClassVar[str] = "backend"
    embedded: ClassVar[bool] = False
    single_writer: ClassVar[bool] = False
    hint: ClassVar[str] = "check that the server is running and the URL is right"

    def __init__(self, url: SlotURL) -> None:
        self.url = url
        self._is_open = False
        self._telemetry: Telemetry | None = None

    @property
    def telemetry(self) -> Telemetry:
        """Where the slot records metrics and spans: the ``Janus`` context's, once it hands it.

        A slot used on its own (tests, tools) records into a private one.
        """
        if self._telemetry is None:
            self._telemetry = Telemetry()
        return self._telemetry

    @telemetry.setter
    def telemetry(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def open(self) -> Self:
        if self._is_open:
            return self
        try:
            self._open()
        except JanusError:
            raise
        except Exception as exc:
            raise SlotUnavailableError(
                f"{self.slot} slot: cannot open {self.backend} at {self.url.redacted}: "
                f"{_describe(exc)}",
                hint=self.hint,
            ) from exc
        self._is_open = True
        return self

    def close(self) -> None:
        if self._is_open:
            self._is_open = False
            self._close()

    @property
    def is_open(self) -> bool:
        return self._is_open

    def probe(self) -> None:
        """Write, read back and delete a probe item; raise a JanusError if anything differs."""
        raise NotImplementedError

    def _require_open(self) -> None:
        if not self._is_open:
            raise ClosedError(
                f"{self.slot} slot ({self.backend}) is not open",
                hint="call open() first, or use the slot as a context manager",
            )

    def _open(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url.redacted!r})"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


SlotT = TypeVar("SlotT", bound=Slot)


def load_backend(
    url: SlotURL, backends: Mapping[str, str], base: type[SlotT], **options: Any
) -> SlotT:
    """Construct the backend registered for ``url``'s scheme.

    Args:
        url: the slot URL.
        backends: scheme → ``"module:Class"``, relative to ``janus_stack.slots``.
        base: the slot's contract; the class found must derive from it.
        options: passed to the backend's constructor after the URL.
    """
    target = backends.get(url.scheme)
    if target is None:
        accepted = ", ".join(f"{scheme}://" for scheme in sorted(backends))
        raise SlotURLError(
            f"{url.slot} slot: unknown scheme {url.scheme!r} in {url.redacted!r}; "
            f"accepted: {accepted}"
        )
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(f"janus_stack.slots.{module_name}")
    except ImportError as exc:
        raise SlotUnavailableError(
            f"{url.slot} slot: the {url.scheme}:// backend needs a package that is not "
            f"installed ({exc.name})",
            hint=f"pip install {exc.name}",
        ) from exc
    cls = getattr(module, class_name)
    if not issubclass(cls, base):
        raise TypeError(f"{target} is not a {base.__name__}")
    backend: SlotT = cls(url, **options)
    return backend

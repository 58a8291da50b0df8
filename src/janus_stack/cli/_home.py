"""This machine's JANUS_HOME as the local backends use it: opened on first use, closed once."""

from __future__ import annotations

from contextlib import ExitStack

from janus_stack.cli._common import CLIState
from janus_stack.config import Settings
from janus_stack.context import Janus


class LocalHome:
    """Settings now, the ``Janus`` context only when a command first needs a store.

    Listing agents or workflows reads files only, so it never takes the
    JANUS_HOME lock a running ``janus serve`` holds.
    """

    def __init__(self, cli: CLIState) -> None:
        self.cli = cli
        self._stack = ExitStack()
        self._janus: Janus | None = None

    @property
    def settings(self) -> Settings:
        return self.cli.settings()

    @property
    def janus(self) -> Janus:
        if self._janus is None:
            self._janus = self._stack.enter_context(self.cli.janus())
        return self._janus

    def close(self) -> None:
        self._stack.close()

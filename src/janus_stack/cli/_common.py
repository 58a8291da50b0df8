"""What every CLI command shares: settings from flags, output, and error exits."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console

from janus_stack.config import Settings, load_settings
from janus_stack.context import Janus
from janus_stack.errors import ConfigError
from janus_stack.logs import configure_logging

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON (stable keys).")
]


@dataclass
class CLIState:
    """Global flags, turned into settings once per command.

    With ``server`` set (``--server`` or ``JANUS_SERVER``) the data commands talk
    to that server through the SDK, and nothing local is read: asking for the
    local settings is then the error every local-only command reports.
    """

    overrides: dict[str, Any] = field(default_factory=dict)
    server: str | None = None
    api_key: str | None = None  # as given: a token, or an env:NAME / file:PATH reference
    command: str = "janus"  # the running command, for messages
    _settings: Settings | None = None

    def settings(self) -> Settings:
        if self.server is not None:
            raise ConfigError(
                f"`{self.command}` works on this machine's JANUS_HOME and has no remote "
                f"form; it cannot run against --server {self.server}",
                hint="drop --server (and unset JANUS_SERVER) to run it here, "
                "or run it on the server's machine",
            )
        if self._settings is None:
            self._settings = load_settings(self.overrides)
            configure_logging(self._settings.log_level, self._settings.secrets())
        return self._settings

    def janus(self) -> Janus:
        return Janus(self.settings())


def command_name(ctx: typer.Context) -> str:
    """``janus runs usage``: the command being run, as a user typed it."""
    names: list[str] = []
    current: typer.Context | None = ctx
    while current is not None and current.parent is not None:
        names.append(current.info_name or "")
        current = current.parent  # type: ignore[assignment]
    return " ".join(["janus", *reversed(names)])


def state(ctx: typer.Context) -> CLIState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CLIState)
    obj.command = command_name(ctx)
    return obj


def stdout() -> Console:
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")

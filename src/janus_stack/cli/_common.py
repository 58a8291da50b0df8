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
from janus_stack.logs import configure_logging

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON (stable keys).")
]


@dataclass
class CLIState:
    """Global flags, turned into settings once per command."""

    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.overrides)
            configure_logging(self._settings.log_level, self._settings.secrets())
        return self._settings

    def janus(self) -> Janus:
        return Janus(self.settings())


def state(ctx: typer.Context) -> CLIState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CLIState)
    return obj


def stdout() -> Console:
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")

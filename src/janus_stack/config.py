"""Settings: one typed object read once at the edges (CLI, server, worker).

Precedence, lowest first: built-in defaults → ``janus.toml`` (the working
directory's, else the one in ``JANUS_HOME``) → ``JANUS_*`` environment
variables → CLI flags. Library code never reads the environment; it is
handed a ``Settings``.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from janus_stack.errors import ConfigError
from janus_stack.urls import SlotURL, redact

SLOTS: tuple[str, ...] = (
    "relational",
    "objects",
    "vectors",
    "graph",
    "queue",
    "cache",
    "embeddings",
    "llm",
)
CONFIG_FILE = "janus.toml"
AGENT_OUTPUT_ENV = "JANUS_AGENT_OUTPUT"  # JSON, the env form of the [agent_output] table


def default_home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("JANUS_HOME") or "~/.janus").expanduser()


def default_slot_urls(home: Path) -> dict[str, str]:
    """Embedded defaults: everything under JANUS_HOME, no servers."""
    return {
        "relational": f"sqlite:///{home}/janus.db",
        "objects": f"file://{home}/objects",
        "vectors": f"qdrant+edge://{home}/vectors",
        "graph": f"ladybug://{home}/graph",
        "queue": "inline://",
        "cache": "memory://",
        "embeddings": "minilm://",
        "llm": "none://",
    }


class SlotURLs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    relational: str
    objects: str
    vectors: str
    graph: str
    queue: str
    cache: str
    embeddings: str
    llm: str


class Settings(BaseModel):
    """The effective configuration.

    Attributes:
        home: holds every embedded store and the ownership lock.
        slots: one URL per slot; the scheme selects the backend.
        tenant: the tenant used when a command names none.
        lock_timeout: seconds a second process waits for JANUS_HOME.
        otel_endpoint: an OTLP/HTTP collector (``http://collector:4318``) that
            receives traces; unset (the default), tracing is off.
        agent_output: the ``OutputLimits`` fields of agents whose manifest sets
            no ``output`` (validated; the fields left out keep their defaults).
            A plain mapping because the agents package imports this module.
        rerank: the default share of late-interaction re-ranking in hybrid
            search, 0 (off, the default) to 1; see ``janus_stack.retrieve.rerank``.
        sources: where each setting came from, for ``janus config show``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path
    slots: SlotURLs
    tenant: str = "default"
    lock_timeout: float = Field(default=0.0, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "warning"
    otel_endpoint: str | None = None
    agent_output: dict[str, Any] = Field(default_factory=dict)
    rerank: float = Field(default=0.0, ge=0, le=1)
    config_file: Path | None = None
    sources: dict[str, str] = Field(default_factory=dict)
    _environ: Mapping[str, str] | None = PrivateAttr(default=None)

    def slot_url(self, slot: str) -> SlotURL:
        """The slot's URL with ``env:``/``file:`` references resolved."""
        return SlotURL.parse(slot, getattr(self.slots, slot), environ=self._environ)

    def secrets(self) -> set[str]:
        found: set[str] = set()
        for slot in SLOTS:
            found |= self.slot_url(slot).secrets
        return found

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data with every secret masked."""
        return {
            "home": str(self.home),
            "config_file": str(self.config_file) if self.config_file else None,
            "tenant": self.tenant,
            "lock_timeout": self.lock_timeout,
            "log_level": self.log_level,
            "otel_endpoint": redact(self.otel_endpoint) if self.otel_endpoint else None,
            "agent_output": dict(self.agent_output),
            "slots": {slot: redact(getattr(self.slots, slot)) for slot in SLOTS},
            "sources": dict(self.sources),
        }


_TOP_LEVEL = (
    "home",
    "tenant",
    "lock_timeout",
    "log_level",
    "otel_endpoint",
    "agent_output",
    "rerank",
)


def _find_config_file(cwd: Path, home: Path) -> Path | None:
    for candidate in (cwd / CONFIG_FILE, home / CONFIG_FILE):
        if candidate.is_file():
            return candidate
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from exc


def _check_file_keys(path: Path, data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if key == "slots":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [slots] must be a table of slot = URL")
            for slot, url in value.items():
                if slot not in SLOTS:
                    raise ConfigError(
                        f"{path}: unknown slot {slot!r} in [slots]; known: {', '.join(SLOTS)}"
                    )
                if not isinstance(url, str):
                    raise ConfigError(f"{path}: slots.{slot} must be a URL string")
        elif key not in _TOP_LEVEL:
            known = ", ".join((*_TOP_LEVEL, "[slots]"))
            raise ConfigError(f"{path}: unknown setting {key!r}; known: {known}")


def _agent_output(value: Any, source: str) -> dict[str, Any]:
    """``value`` (a table, or JSON from the environment) validated as ``OutputLimits``;
    the fields it sets, so a manifest's ``output`` still overrides each of them.

    Validated here so a bad value stops a command at its start, naming its source and
    field, instead of failing a run at its agent's first model turn.
    """
    # The agents package imports this module (through the context): import it late.
    from janus_stack.agents.manifest import OutputLimits  # noqa: PLC0415 - cycle

    if source == f"env {AGENT_OUTPUT_ENV}":
        where = AGENT_OUTPUT_ENV
        hint = f'e.g. {AGENT_OUTPUT_ENV}=\'{{"max_answer_chars": 240, "charset": "basic"}}\''
    else:
        where = f"{source}: agent_output"
        hint = 'e.g. [agent_output] with max_answer_chars = 240 and charset = "basic"'
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON: {exc}", hint=hint) from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table (in JSON an object) of limits", hint=hint)
    try:
        limits = OutputLimits.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}", hint=hint) from exc
    return limits.model_dump(include=limits.model_fields_set)


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
) -> Settings:
    """Build the effective settings.

    Args:
        overrides: CLI flags; keys are top-level settings or ``<slot>_url``.
        environ: the environment to read ``JANUS_*`` from (default: os.environ).
        cwd: where to look for ``janus.toml`` first (default: the working dir).
    """
    env = dict(os.environ if environ is None else environ)
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    sources: dict[str, str] = {}

    home = Path(flags["home"]).expanduser() if "home" in flags else default_home(env)
    config_file = _find_config_file(Path(cwd) if cwd is not None else Path.cwd(), home)
    file_data: dict[str, Any] = {}
    if config_file is not None:
        file_data = _read_toml(config_file)
        _check_file_keys(config_file, file_data)
        if "home" in file_data and "home" not in flags and "JANUS_HOME" not in env:
            home = Path(str(file_data["home"])).expanduser()

    values: dict[str, Any] = {"home": home}
    slots = default_slot_urls(home)
    for slot in slots:
        sources[f"slots.{slot}"] = "default"
    for key in _TOP_LEVEL[1:]:
        sources[key] = "default"
    sources["home"] = "default"

    def take(key: str, value: Any, source: str) -> None:
        if key.endswith("_url") and key[:-4] in SLOTS:
            slots[key[:-4]] = value
            sources[f"slots.{key[:-4]}"] = source
        else:
            values[key] = value
            sources[key] = source

    if config_file is not None:
        for key in _TOP_LEVEL:
            if key in file_data:
                take(key, file_data[key], str(config_file))
        for slot, url in file_data.get("slots", {}).items():
            take(f"{slot}_url", url, str(config_file))
    for key in (*_TOP_LEVEL, *(f"{slot}_url" for slot in SLOTS)):
        name = f"JANUS_{key.upper()}"
        if env.get(name):
            take(key, env[name], f"env {name}")
    for key, value in flags.items():
        take(key, value, "flag")
    values["home"] = Path(values["home"]).expanduser()
    if "agent_output" in values:
        values["agent_output"] = _agent_output(values["agent_output"], sources["agent_output"])

    try:
        settings = Settings(
            slots=SlotURLs(**slots), config_file=config_file, sources=sources, **values
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
    settings._environ = env
    return settings

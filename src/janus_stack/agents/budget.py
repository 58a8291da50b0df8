"""Budgets and prices: what a step, an agent or a run may spend, and what it did spend.

A :class:`Meter` counts tokens, cost, steps and wall time against one
:class:`~janus_stack.agents.manifest.Budget`; meters nest (an agent's meter
charges its run's meter too), so the first limit reached stops the work
with a :class:`BudgetExceededError` naming which budget and by how much.

Cost comes from a :class:`PriceTable` (USD per million tokens by model
name); a model the table does not name costs 0. Local models cost 0 too
(the ``none``/``extractive``/``llamacpp`` providers and any server on the
loopback interface) unless their entry says ``local = true``, for a team
that charges its own hardware per token.
"""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from janus_stack.agents.manifest import Budget
from janus_stack.errors import ConfigError, JanusError

LOCAL_SCHEMES = ("none", "extractive", "llamacpp")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


class BudgetExceededError(JanusError):
    """A limit of a budget was reached; the run ends ``budget_exceeded``.

    ``usage`` is set by whoever knows what the stopped work had spent by then.
    """

    usage: Any = None


@dataclass(frozen=True)
class Price:
    prompt_per_million: float
    completion_per_million: float
    local: bool = False  # charge this price even when the model runs locally


class PriceTable:
    """Model name → price. ``prices.toml`` in JANUS_HOME adds or overrides entries::

    [models."gpt-4o-mini"]
    prompt = 0.15        # USD per million prompt tokens
    completion = 0.60
    # local = true       # charge it even when served locally (default: local is free)
    """

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self.prices = dict(prices or {})

    @classmethod
    def load(cls, path: Path) -> PriceTable:
        if not path.is_file():
            return cls()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read as TOML: {exc}") from exc
        prices: dict[str, Price] = {}
        for name, entry in (data.get("models") or {}).items():
            problem = ConfigError(
                f"{path}: models.{name} needs numbers 'prompt' and 'completion' "
                "(USD per million tokens) and, optionally, local = true or false"
            )
            local = entry.get("local", False) if isinstance(entry, dict) else None
            if not isinstance(local, bool):
                raise problem
            try:
                prices[name] = Price(float(entry["prompt"]), float(entry["completion"]), local)
            except (KeyError, TypeError, ValueError) as exc:
                raise problem from exc
        return cls(prices)

    @staticmethod
    def is_local(provider: str) -> bool:
        parts = urlsplit(provider)
        scheme = parts.scheme.split("+", 1)[0]
        return scheme in LOCAL_SCHEMES or (parts.hostname or "") in LOCAL_HOSTS or not provider

    def cost(self, provider: str, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.prices.get(model)
        if price is None or (self.is_local(provider) and not price.local):
            return 0.0
        return (
            prompt_tokens * price.prompt_per_million
            + completion_tokens * price.completion_per_million
        ) / 1_000_000


@dataclass
class Meter:
    """Spending against one budget; ``parent`` is charged too.

    Attributes:
        label: names the budget in messages (``run 1a2b``, ``agent writer``).
        elapsed_before: wall seconds spent before this process took over (resume).
    """

    label: str
    budget: Budget
    parent: Meter | None = None
    tokens: int = 0
    cost: float = 0.0
    steps: int = 0
    elapsed_before: float = 0.0
    started: float = field(default_factory=time.monotonic)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def step(self) -> None:
        """Count one step of this budget's own kind (not the parent's) and check limits."""
        with self._lock:
            self.steps += 1
            steps = self.steps
        limit = self.budget.max_steps
        if limit is not None and steps > limit:
            raise BudgetExceededError(
                f"{self.label}: budget exceeded: step {steps} is over max_steps={limit}"
            )
        self.check()

    def charge(self, tokens: int, cost: float) -> None:
        if self.parent is not None:
            self.parent.charge(tokens, cost)
        with self._lock:
            self.tokens += tokens
            self.cost += cost
        self.check()

    def check(self) -> None:
        budget = self.budget
        if budget.max_tokens is not None and self.tokens > budget.max_tokens:
            raise BudgetExceededError(
                f"{self.label}: budget exceeded: {self.tokens} tokens used, "
                f"max_tokens={budget.max_tokens}"
            )
        if budget.max_cost is not None and self.cost > budget.max_cost:
            raise BudgetExceededError(
                f"{self.label}: budget exceeded: cost {self.cost:.6f} over "
                f"max_cost={budget.max_cost}"
            )
        if budget.max_wall_seconds is not None and self.elapsed > budget.max_wall_seconds:
            raise BudgetExceededError(
                f"{self.label}: budget exceeded: {self.elapsed:.1f}s of wall time, "
                f"max_wall_seconds={budget.max_wall_seconds:g}"
            )
        if self.parent is not None:
            self.parent.check()

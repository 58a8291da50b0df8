"""The semantic cache of agent steps: a close enough prompt reuses a stored result.

An agent whose manifest has a ``cache`` policy consults the cache before
each of its workflow steps. The step's prompt is embedded with the
embeddings slot (normalised vectors, so cosine similarity is a dot
product) and compared with the recent entries of the same agent, tenant
and *fingerprint* (a hash of the manifest and the embedding model, so
editing the agent or changing the model starts afresh). The best entry at
or above the policy's ``threshold`` and younger than its ``ttl_seconds``
is a hit: its output becomes the step's output, with zero tokens and cost.

Entries live in the ledger (``agent_cache``), so they survive restarts and
are shared by every process; only steps recorded ``done`` are stored. A
lookup scans the newest :data:`SCAN` entries of one (tenant, agent,
fingerprint) in Python, which is plenty at the scale of a team's agents.

The decision is journaled like a tool call (tool ``agent.cache``, key
``RUN:STEP:cache``) before it is acted on: a resumed run takes the same
decision even if the entry has since expired, so resume stays exact. A
step's ``cache`` column says ``hit`` or ``miss``; :meth:`SemanticCache.stats`
sums them per agent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, case, func, insert, select

from janus_stack.agents.manifest import AgentManifest, CachePolicy
from janus_stack.agents.runtime import MAX_PROMPT_CHARS, prompt_of
from janus_stack.errors import InvalidInputError
from janus_stack.slots.embeddings import Embedder
from janus_stack.telemetry import Telemetry
from janus_stack.workflows.models import AgentCacheEntry
from janus_stack.workflows.store import RUNS, STEPS, RunStore, now

ENTRIES = cast(Table, AgentCacheEntry.__table__)
CACHE_TOOL = "agent.cache"
HIT, MISS = "hit", "miss"
SCAN = 200


@dataclass
class Decision:
    """What the cache said for one step; ``vector`` is None when replayed from the journal."""

    hit: bool
    prompt: str
    output: dict[str, Any] | None = None
    similarity: float | None = None
    entry: int | None = None
    vector: list[float] | None = None

    def journal(self) -> dict[str, Any]:
        return {
            "hit": self.hit,
            "output": self.output,
            "similarity": self.similarity,
            "entry": self.entry,
        }


def fingerprint(agent: AgentManifest, model: str) -> str:
    """What an entry must share with a step to be reusable: the manifest and embedder."""
    text = agent.model_dump_json() + "\x1f" + model
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class SemanticCache:
    """Lookups and writes of ``agent_cache``, and the journaled decision of a step.

    Args:
        telemetry: counts fresh decisions as ``janus_cache_requests_total``
            hits and misses (a decision replayed on resume is not counted again).
    """

    def __init__(
        self,
        store: RunStore,
        embedder: Callable[[], Embedder],
        *,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self._embedder = embedder  # opened on first use: most runs never consult the cache
        self.telemetry = telemetry if telemetry is not None else Telemetry()

    @property
    def embedder(self) -> Embedder:
        return self._embedder()

    def embed(self, prompt: str) -> list[float]:
        return [float(x) for x in self.embedder.embed([prompt])[0]]

    def lookup(
        self, tenant: str, agent: AgentManifest, policy: CachePolicy, vector: list[float]
    ) -> tuple[int, float, dict[str, Any]] | None:
        """The best live entry at or above the threshold: (entry id, similarity, output)."""
        oldest = now() - timedelta(seconds=policy.ttl_seconds)
        query = (
            select(ENTRIES.c.id, ENTRIES.c.embedding, ENTRIES.c.output)
            .where(
                ENTRIES.c.tenant_id == tenant,
                ENTRIES.c.agent == agent.name,
                ENTRIES.c.fingerprint == fingerprint(agent, self.embedder.model),
                ENTRIES.c.created_at >= oldest,
            )
            .order_by(ENTRIES.c.created_at.desc(), ENTRIES.c.id.desc())
            .limit(SCAN)
        )
        with self.store.ledger.engine.connect() as connection:
            rows = connection.execute(query).all()
        best: tuple[int, float, dict[str, Any]] | None = None
        for entry_id, stored, output in rows:
            if len(stored) != len(vector):
                continue
            similarity = sum(a * b for a, b in zip(stored, vector, strict=True))
            if similarity >= policy.threshold and (best is None or similarity > best[1]):
                best = (int(entry_id), float(similarity), dict(output))
        return best

    def put(
        self,
        tenant: str,
        agent: AgentManifest,
        prompt: str,
        vector: list[float],
        output: dict[str, Any],
        *,
        run_id: str,
        step_key: str,
    ) -> None:
        with self.store.transaction() as c:
            c.execute(
                insert(ENTRIES).values(
                    tenant_id=tenant,
                    agent=agent.name,
                    fingerprint=fingerprint(agent, self.embedder.model),
                    prompt=prompt,
                    embedding=vector,
                    output=output,
                    run_id=run_id,
                    step_key=step_key,
                    created_at=now(),
                )
            )

    def decide(
        self, run_id: str, tenant: str, step_key: str, agent: AgentManifest, value: Any
    ) -> Decision:
        """Hit or miss for one step of ``agent`` (which must have a cache policy), journaled."""
        policy = agent.cache
        if policy is None:
            raise InvalidInputError(f"agent {agent.name} has no cache policy")
        prompt = " ".join(prompt_of(value)[0].split())[: MAX_PROMPT_CHARS * 4]
        key = f"{run_id}:{step_key}:cache"
        journaled = self.store.journal(key)
        if journaled is not None and journaled.status == "done" and journaled.result:
            data = dict(journaled.result)
            return Decision(
                hit=bool(data.get("hit")),
                prompt=prompt,
                output=data.get("output"),
                similarity=data.get("similarity"),
                entry=data.get("entry"),
            )
        vector = self.embed(prompt)
        found = self.lookup(tenant, agent, policy, vector)
        decision = Decision(hit=found is not None, prompt=prompt, vector=vector)
        self.telemetry.cache_lookup("semantic", decision.hit)
        if found is not None:
            decision.entry, decision.similarity, decision.output = found
        digest = hashlib.sha256(prompt.encode()).hexdigest()[:16]
        self.store.journal_begin(key, run_id, step_key, CACHE_TOOL, agent.name, {"prompt": digest})
        self.store.journal_finish(key, result=decision.journal(), error=None)
        return decision

    def stats(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Hits and misses per agent (and tenant), from the recorded steps."""
        hits = func.sum(case((STEPS.c.cache == HIT, 1), else_=0))
        misses = func.sum(case((STEPS.c.cache == MISS, 1), else_=0))
        query = (
            select(RUNS.c.tenant_id, STEPS.c.agent, hits, misses)
            .select_from(STEPS.join(RUNS, STEPS.c.run_id == RUNS.c.id))
            .where(STEPS.c.cache.is_not(None))
            .group_by(RUNS.c.tenant_id, STEPS.c.agent)
            .order_by(RUNS.c.tenant_id, STEPS.c.agent)
        )
        if tenant is not None:
            query = query.where(RUNS.c.tenant_id == tenant)
        with self.store.ledger.engine.connect() as connection:
            rows = connection.execute(query).all()
        found = []
        for row_tenant, agent, hit_count, miss_count in rows:
            total = int(hit_count or 0) + int(miss_count or 0)
            found.append(
                {
                    "tenant": row_tenant,
                    "agent": agent,
                    "hits": int(hit_count or 0),
                    "misses": int(miss_count or 0),
                    "hit_rate": round(int(hit_count or 0) / total, 4) if total else 0.0,
                }
            )
        return found

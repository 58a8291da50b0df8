"""Value types of the graph slot: what callers hand in and what they get back.

The types check their own fields when constructed, so a bad value fails at
the line that built it with a message naming the field, and every backend
can trust what it receives. Tenants are checked by the slot instead: the
slot alone decides which tenants a caller may touch.

Values read back from a store are rebuilt with ``restore_*`` helpers that
skip validation and ID derivation: the stored row is already valid, and
reads are the hot path of retrieval.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from janus_stack.errors import IntegrityError, InvalidInputError
from janus_stack.ids import relation_id

# Control characters are never part of an ID; forbidding them lets backends
# use one (\x1f) as a safe separator in bulk-load files.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def check_id(value: object, what: str) -> str:
    """Return ``value`` if it is a usable ID (a non-empty string without control characters)."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{what} must be a non-empty string, got {value!r}")
    if _CONTROL.search(value):
        raise InvalidInputError(f"{what} {value!r} contains a control character")
    return value


def check_text(value: object, what: str) -> str:
    """Return ``value`` if it is a non-empty string (names and types may hold any text)."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_ids(values: object, what: str) -> list[str]:
    """Return a de-duplicated list of IDs, refusing a bare string (a common slip)."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidInputError(f"{what} must be a list of strings, got {type(values).__name__}")
    return list(dict.fromkeys(check_id(value, f"{what}[{i}]") for i, value in enumerate(values)))


def _freeze(properties: object, what: str) -> tuple[Mapping[str, Any], str]:
    """Copy ``properties`` (``None`` meaning none) into a read-only mapping and its JSON text."""
    if properties is None:
        return _EMPTY, "{}"
    if not isinstance(properties, Mapping):
        raise InvalidInputError(f"{what} must be a mapping, got {type(properties).__name__}")
    plain = dict(properties)  # json cannot encode mapping proxies or stored properties
    if not all(isinstance(key, str) for key in plain):
        raise InvalidInputError(f"{what} keys must be strings")
    try:
        text = json.dumps(
            plain, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be JSON-serialisable: {exc}") from exc
    return MappingProxyType(plain), text


class StoredProperties(Mapping[str, Any]):
    """Properties read from a store, parsed on first use.

    Retrieval reads many entities and relations and looks at few of their
    properties; parsing JSON for each was a tenth of a neighbourhood query.
    """

    __slots__ = ("_text", "_value", "_where")

    def __init__(self, text: str, where: str) -> None:
        self._text, self._where = text, where
        self._value: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._value is None:
            try:
                value = json.loads(self._text)
            except ValueError as exc:
                raise IntegrityError(
                    f"graph: stored properties of {self._where} are not JSON"
                ) from exc
            if not isinstance(value, dict):
                raise IntegrityError(
                    f"graph: stored properties of {self._where} are not a JSON object"
                )
            self._value = value
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return repr(self._load())


def load_properties(text: str | None, where: str) -> Mapping[str, Any]:
    """Wrap stored properties text; an empty object needs no parsing at all."""
    if not text or text == "{}":
        return _EMPTY
    return StoredProperties(text, where)


@dataclass(frozen=True)
class Entity:
    """A node: a named thing of a type, unique per (tenant, id)."""

    id: str
    tenant: str
    name: str
    type: str
    properties: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_id(self.id, "entity id")
        check_text(self.name, f"entity {self.id!r} name")
        check_text(self.type, f"entity {self.id!r} type")
        frozen, text = _freeze(self.properties, f"entity {self.id!r} properties")
        object.__setattr__(self, "properties", frozen)
        object.__setattr__(self, "_json", text)

    @property
    def properties_json(self) -> str:
        """The canonical JSON text stored for ``properties``."""
        text: str = self.__dict__["_json"]
        return text


@dataclass(frozen=True)
class Relation:
    """A typed edge between two entities of one tenant, with the chunks that support it.

    The ID is derived (``ids.relation_id``), so the same fact extracted twice
    lands on the same edge. ``chunk_ids`` is kept sorted and de-duplicated:
    it is a set, and a stable order makes relations comparable.
    """

    tenant: str
    source_id: str
    target_id: str
    type: str
    chunk_ids: tuple[str, ...] = ()
    properties: Mapping[str, Any] = field(default_factory=dict, hash=False)
    id: str = field(init=False)

    def __post_init__(self) -> None:
        check_id(self.source_id, "relation source_id")
        check_id(self.target_id, "relation target_id")
        check_text(self.type, "relation type")
        where = f"relation {self.source_id}-[{self.type}]->{self.target_id}"
        chunks = sorted(check_ids(self.chunk_ids, f"{where} chunk_ids"))
        frozen, text = _freeze(self.properties, f"{where} properties")
        object.__setattr__(self, "chunk_ids", tuple(chunks))
        object.__setattr__(self, "properties", frozen)
        object.__setattr__(self, "_json", text)
        rid = relation_id(self.tenant, self.source_id, self.type, self.target_id)
        object.__setattr__(self, "id", rid)

    @property
    def properties_json(self) -> str:
        """The canonical JSON text stored for ``properties``."""
        text: str = self.__dict__["_json"]
        return text


@dataclass(frozen=True)
class Mention:
    """A chunk of a document mentions an entity."""

    tenant: str
    chunk_id: str
    doc_id: str
    entity_id: str

    def __post_init__(self) -> None:
        check_id(self.chunk_id, "mention chunk_id")
        check_id(self.doc_id, "mention doc_id")
        check_id(self.entity_id, "mention entity_id")


@dataclass(frozen=True)
class Path:
    """A walk between two entities: ``relations[i]`` joins ``entities[i]`` and ``entities[i+1]``.

    Traversal ignores direction, so a relation may point either way along the path.
    """

    entities: list[Entity]
    relations: list[Relation]

    @property
    def hops(self) -> int:
        return len(self.relations)


@dataclass(frozen=True)
class Subgraph:
    """A set of entities and the relations among them."""

    entities: list[Entity]
    relations: list[Relation]


@dataclass(frozen=True)
class GraphCounts:
    entities: int
    relations: int
    mentions: int
    chunks: int


@dataclass(frozen=True)
class RemovalReport:
    """What ``remove_document`` changed, for the event log and ``janus verify``."""

    chunks: int
    mentions: int
    relations_removed: int
    relations_updated: int
    entities_removed: int


@dataclass(frozen=True)
class DocumentFootprint:
    """Everything a document contributes, read before anything is removed.

    Backends fill it; the slot decides from it what goes and what stays, so
    the contribution rules live in one place.

    Attributes:
        chunk_ids: the document's chunks.
        mentions: how many mentions those chunks hold.
        relations: the stored relations that one of those chunks supports.
        touched: every entity mentioned by a chunk or joined by such a relation.
        mentioned_elsewhere: touched entities also mentioned by another document.
        edges: touched entity id → ids of all its relations.
    """

    chunk_ids: frozenset[str]
    mentions: int
    relations: list[Relation]
    touched: frozenset[str]
    mentioned_elsewhere: frozenset[str]
    edges: Mapping[str, frozenset[str]]


def restore_entity(
    id: str, tenant: str, name: str | None, type: str | None, properties: str | None
) -> Entity:
    """Rebuild an entity read from a store, without re-validating it."""
    entity = object.__new__(Entity)
    values = {
        "id": id,
        "tenant": tenant,
        "name": name or "",
        "type": type or "",
        "properties": load_properties(properties, f"entity {id!r}"),
        "_json": properties or "{}",
    }
    entity.__dict__.update(values)
    return entity


def restore_relation(
    *,
    id: str,
    tenant: str,
    source_id: str,
    target_id: str,
    type: str | None,
    chunk_ids: Sequence[str] | None,
    properties: str | None,
) -> Relation:
    """Rebuild a relation read from a store: the stored ID is the truth, not re-derived."""
    relation = object.__new__(Relation)
    values = {
        "id": id,
        "tenant": tenant,
        "source_id": source_id,
        "target_id": target_id,
        "type": type or "",
        "chunk_ids": tuple(sorted(chunk_ids or ())),
        "properties": load_properties(properties, f"relation {id!r}"),
        "_json": properties or "{}",
    }
    relation.__dict__.update(values)
    return relation


def with_chunk_ids(relation: Relation, chunk_ids: Iterable[str]) -> Relation:
    """A copy of ``relation`` supported by ``chunk_ids`` instead (the id stays)."""
    return restore_relation(
        id=relation.id,
        tenant=relation.tenant,
        source_id=relation.source_id,
        target_id=relation.target_id,
        type=relation.type,
        chunk_ids=sorted(set(chunk_ids)),
        properties=relation.properties_json,
    )


def entity_from_row(tenant: str, row: Sequence[Any]) -> Entity:
    """An entity from a stored row of (id, name, type, properties)."""
    eid, name, kind, props = row
    return restore_entity(eid, tenant, name, kind, props)


def relation_from_row(tenant: str, row: Sequence[Any]) -> Relation:
    """A relation from a stored row of (id, source id, target id, type, chunk_ids, properties)."""
    rid, source, target, kind, chunks, props = row
    return restore_relation(
        id=rid,
        tenant=tenant,
        source_id=source,
        target_id=target,
        type=kind,
        chunk_ids=chunks,
        properties=props,
    )

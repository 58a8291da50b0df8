"""Metadata filters: parsed and checked once, applied by every mode.

A filter is ``field=value``; several filters must all hold. The fields are
the document metadata every store carries: ``doc_id``, ``document_id``,
``source``, ``title``, ``page`` (an integer) and ``tags.<name>`` (the
``--tag`` values given at ingest). Dense search hands them to the vector
index as payload conditions; keyword and graph search apply them in SQL;
and every hit is checked against the ledger again, which is the truth if a
payload lags behind (a title or tags changed without a new version).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_

from janus_stack.errors import InvalidInputError
from janus_stack.ledger.models import Chunk, Document, DocumentVersion
from janus_stack.slots.vectors import Scalar, VectorFilter

FIELDS = ("doc_id", "document_id", "source", "title", "page", "tags.<name>")
MAX_FILTERS = 20
_TAG = re.compile(r"tags\.([A-Za-z0-9_][A-Za-z0-9_.:-]{0,63})")
_MAX_VALUE = 1_000


@dataclass(frozen=True)
class Filters:
    """Checked filters: field → value (``page`` an int, everything else text)."""

    values: Mapping[str, str | int]

    @classmethod
    def parse(cls, given: Mapping[str, object] | Iterable[str] | None) -> Filters:
        """From a mapping or from ``field=value`` strings (the CLI's ``--filter``)."""
        if given is None:
            return cls({})
        pairs: list[tuple[object, object]]
        if isinstance(given, Mapping):
            pairs = list(given.items())
        elif isinstance(given, str | bytes):
            raise InvalidInputError("search: filters must be a mapping or a list of field=value")
        else:
            pairs = []
            for item in given:
                if not isinstance(item, str) or "=" not in item:
                    raise InvalidInputError(
                        f"search: filter {item!r} must be written field=value",
                        hint=f"fields: {', '.join(FIELDS)}",
                    )
                field, _, text = item.partition("=")
                pairs.append((field.strip(), text.strip()))
        if len(pairs) > MAX_FILTERS:
            raise InvalidInputError(f"search: at most {MAX_FILTERS} filters, got {len(pairs)}")
        values: dict[str, str | int] = {}
        for name, value in pairs:
            key = _check_field(name)
            if key in values:
                raise InvalidInputError(f"search: filter field {key!r} is given twice")
            values[key] = _check_value(key, value)
        return cls(values)

    def __bool__(self) -> bool:
        return bool(self.values)

    def vector_filter(self, tenant: str) -> VectorFilter:
        """The same conditions on the vector payload (see ``ingest/projection.py``)."""
        equals: dict[str, Scalar] = dict(self.values.items())
        return VectorFilter(tenant=tenant, equals=equals)

    def sql(self) -> list[ColumnElement[bool]]:
        """Conditions on ``Chunk``, ``DocumentVersion`` and ``Document`` rows joined as in
        :func:`janus_stack.retrieve.ledger.live_versions`."""
        conditions: list[ColumnElement[bool]] = []
        for name, value in self.values.items():
            if name == "doc_id":
                conditions.append(Chunk.doc_id == value)
            elif name == "document_id":
                conditions.append(DocumentVersion.document_id == value)
            elif name == "source":
                conditions.append(Document.source == value)
            elif name == "title":
                conditions.append(Document.title == value)
            elif name == "page":
                conditions.append(Chunk.page == value)
            else:
                tag = name.removeprefix("tags.")
                conditions.append(Document.tags[tag].as_string() == str(value))
        return conditions

    def sql_all(self) -> ColumnElement[bool] | None:
        conditions = self.sql()
        return and_(*conditions) if conditions else None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


def _check_field(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"search: filter field {name!r} is not a name")
    if name in FIELDS[:-1] or _TAG.fullmatch(name):
        return name
    raise InvalidInputError(
        f"search: unknown filter field {name!r}",
        hint=f"filter on one of: {', '.join(FIELDS)}",
    )


def _check_value(name: str, value: object) -> str | int:
    if name == "page":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d{1,9}", value.strip()):
            return int(value)
        raise InvalidInputError(f"search: filter page={value!r} is not a whole number")
    if not isinstance(value, str):
        raise InvalidInputError(f"search: filter {name}={value!r} must be text")
    if not value or len(value) > _MAX_VALUE or "\x00" in value:
        raise InvalidInputError(
            f"search: filter {name} needs a value of 1 to {_MAX_VALUE} characters"
        )
    return value

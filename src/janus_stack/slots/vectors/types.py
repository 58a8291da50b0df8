"""Value types of the vectors slot and the one place they are checked.

The dataclasses are plain carriers: they accept anything so that callers can
build them freely, and ``VectorIndex`` checks them once, at its public
methods, with the ``check_*`` functions below. Backends therefore receive
only checked values: canonical UUID strings, lists of finite floats of the
right dimension, and filters whose tenant is valid.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

from janus_stack.errors import InvalidInputError
from janus_stack.ids import check_tenant

Scalar: TypeAlias = str | int | bool
"""A value an equality filter can match (Qdrant matches keywords, integers and booleans)."""

MAX_LIMIT = 10_000
_F32_MAX = 3.4028234663852886e38
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_JSON_LEAVES = (str, bool, type(None))


@dataclass(frozen=True)
class Range:
    """Bounds on a numeric payload field; ``None`` leaves a side open."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@dataclass(frozen=True)
class VectorPoint:
    """One embedding to store.

    Attributes:
        id: a UUID string (Janus uses ``ids.chunk_id``); upserting the same id
            again replaces the point, which makes every write idempotent.
        vector: the embedding, of the index's dimension.
        payload: JSON-like metadata; must carry the point's ``tenant``.
    """

    id: str
    vector: Sequence[float]
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class VectorHit:
    """A point as read back. ``score`` is the cosine similarity for ``search``
    and 0.0 for ``scroll``/``retrieve``, which do not rank."""

    id: str
    score: float
    payload: dict[str, Any]
    vector: list[float] | None = None


@dataclass(frozen=True)
class VectorFilter:
    """Which points an operation touches; always inside one tenant.

    Attributes:
        tenant: the only tenant whose points can match.
        equals: field → value (exact match) or sequence of values (any of).
        ranges: field → numeric bounds.
        ids: restrict to these point ids (``[]`` matches nothing).
    """

    tenant: str
    equals: Mapping[str, Scalar | Sequence[Scalar]] = field(default_factory=dict)
    ranges: Mapping[str, Range] = field(default_factory=dict)
    ids: Sequence[str] | None = None

    @property
    def matches_nothing(self) -> bool:
        """True for a checked filter that no point can satisfy (an empty any-of list)."""
        if self.ids is not None and len(self.ids) == 0:
            return True
        return any(isinstance(v, list) and not v for v in self.equals.values())


def check_id(value: object, where: str) -> str:
    """Return the canonical (lowercase, hyphenated) form of a UUID string."""
    try:
        return _id(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None


def check_vector(vector: object, dim: int, where: str) -> list[float]:
    """Return ``vector`` as a list of floats after checking its shape and values."""
    try:
        return _vector(vector, dim)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}", hint=exc.hint) from None


def check_points(
    points: Sequence[VectorPoint], dim: int
) -> tuple[list[str], list[list[float]], list[dict[str, Any]]]:
    """Check every point; return ids, vectors and payloads as the backends take them.

    This loop runs once per stored point, so it avoids per-point work that
    is only needed for an error message: the location is added on failure.
    """
    ids: list[str] = []
    vectors: list[list[float]] = []
    payloads: list[dict[str, Any]] = []
    tenants: set[str] = set()
    for index, point in enumerate(points):
        if not isinstance(point, VectorPoint):
            raise InvalidInputError(
                f"vectors.upsert: point {index} is a {type(point).__name__}, not a VectorPoint"
            )
        try:
            ids.append(_id(point.id))
            vectors.append(_vector(point.vector, dim))
            payloads.append(_payload(point.payload, tenants))
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"vectors.upsert: point {index} ({point.id!r}): {exc}", hint=exc.hint
            ) from None
    return ids, vectors, payloads


def _id(value: object) -> str:
    if isinstance(value, str):
        if _CANONICAL_UUID.fullmatch(value):
            return value
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise InvalidInputError(f"point id {value!r} is not a UUID string")


def _vector(vector: object, dim: int) -> list[float]:
    """One ``math.hypot`` call catches NaN, infinities, values beyond float32
    (stored as infinity) and the zero vector, which has no cosine direction."""
    if type(vector) is list:
        values = vector
    elif hasattr(vector, "tolist"):
        values = vector.tolist()
    elif isinstance(vector, Sequence) and not isinstance(vector, str | bytes):
        values = list(vector)
    else:
        raise InvalidInputError(f"the vector must be a sequence of numbers, not {vector!r}")
    if len(values) != dim:
        raise InvalidInputError(
            f"the vector has {len(values)} dimensions, the index expects {dim}",
            hint="embed with the model the index was created for",
        )
    try:
        norm = math.hypot(*values)
    except TypeError:
        bad = next(v for v in values if not isinstance(v, int | float))
        raise InvalidInputError(f"the vector holds a non-number {bad!r}") from None
    if not math.isfinite(norm):
        raise InvalidInputError("the vector holds NaN or infinite values")
    if norm == 0.0:
        raise InvalidInputError("the vector is all zeros and has no cosine direction")
    if norm > _F32_MAX:
        raise InvalidInputError("the vector holds values beyond the float32 range")
    return values


def _payload(payload: object, tenants: set[str]) -> dict[str, Any]:
    """Check a payload is JSON with a valid tenant; ``tenants`` caches names already checked."""
    if not isinstance(payload, Mapping):
        raise InvalidInputError(f"the payload must be a mapping, not {payload!r}")
    tenant = payload.get("tenant")
    if tenant is None:
        raise InvalidInputError(
            "the payload has no 'tenant'",
            hint="every point must carry its tenant so queries can be isolated",
        )
    if type(tenant) is not str or tenant not in tenants:
        check_tenant(tenant)
        tenants.add(tenant)
    for key, value in payload.items():
        if type(key) is not str or not key:
            raise InvalidInputError(f"payload key {key!r} is not a non-empty string")
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if kind is int and _INT_MIN <= value <= _INT_MAX:
            continue
        if kind is float and math.isfinite(value):
            continue
        _check_json(value, f"payload[{key!r}]")
    return payload if type(payload) is dict else dict(payload)


def _check_json(value: object, where: str) -> None:
    if isinstance(value, _JSON_LEAVES):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise InvalidInputError(f"{where}: integer {value} does not fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{where}: {value} is not a finite number")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{where}: key {key!r} is not a string")
            _check_json(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
    else:
        raise InvalidInputError(
            f"{where}: {type(value).__name__} is not JSON (use str, number, bool, None, list, dict)"
        )


def check_limit(limit: object, where: str) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"{where}: limit must be an integer from 1 to {MAX_LIMIT}")
    return limit


def check_filter(flt: object, where: str) -> VectorFilter:
    """Return a normalised copy of ``flt``: valid tenant, canonical ids, lists for any-of."""
    if not isinstance(flt, VectorFilter):
        raise InvalidInputError(f"{where}: expected a VectorFilter, not {type(flt).__name__}")
    tenant = check_tenant(flt.tenant)
    if not flt.equals and not flt.ranges and flt.ids is None:
        return flt  # the common tenant-only filter: nothing to normalise
    equals: dict[str, Scalar | list[Scalar]] = {}
    for key, value in _items(flt.equals, "equals", where):
        equals[key] = _check_match(value, f"{where}: equals[{key!r}]")
    ranges: dict[str, Range] = {}
    for key, bounds in _items(flt.ranges, "ranges", where):
        ranges[key] = _check_range(bounds, f"{where}: ranges[{key!r}]")
    ids: list[str] | None = None
    if flt.ids is not None:
        if isinstance(flt.ids, str | bytes) or not isinstance(flt.ids, Sequence):
            raise InvalidInputError(f"{where}: ids must be a list of UUID strings")
        ids = list(dict.fromkeys(check_id(i, f"{where}: ids") for i in flt.ids))
    return replace(flt, tenant=tenant, equals=equals, ranges=ranges, ids=ids)


def _items(mapping: object, name: str, where: str) -> list[tuple[str, Any]]:
    if not isinstance(mapping, Mapping):
        raise InvalidInputError(f"{where}: {name} must be a mapping of field → condition")
    for key in mapping:
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"{where}: {name} key {key!r} is not a non-empty string")
        if key == "tenant":
            raise InvalidInputError(
                f"{where}: {name} names 'tenant'; give the tenant as VectorFilter.tenant"
            )
    return list(mapping.items())


def _check_match(value: object, where: str) -> Scalar | list[Scalar]:
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        values = list(value)
        if all(isinstance(v, str) for v in values):
            return values
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return values
        raise InvalidInputError(
            f"{where}: an any-of list must hold only strings or only integers, got {values!r}"
        )
    raise InvalidInputError(
        f"{where}: {value!r} cannot be matched exactly; use a string, integer or boolean "
        "(or a range for floats)"
    )


def _check_range(bounds: object, where: str) -> Range:
    if not isinstance(bounds, Range):
        raise InvalidInputError(f"{where}: expected a Range, not {bounds!r}")
    given = {k: v for k, v in vars(bounds).items() if v is not None}
    if not given:
        raise InvalidInputError(f"{where}: the range sets no bound")
    for name, value in given.items():
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise InvalidInputError(f"{where}: bound {name}={value!r} is not a finite number")
    return bounds

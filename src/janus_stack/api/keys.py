"""API keys: roles, scopes, and the ledger's ``api_keys`` table.

A key is ``jns_<id8>_<secret>``: 32 random bytes (256 bits) of secret, so a
plain sha256 of the whole token is a safe verifier (no salt or slow hash is
needed against guessing a 256-bit value). Only that hash is stored; the
token is shown once by ``janus keys create``. Lookup is by hash (an index),
and the stored hash is compared again with :func:`hmac.compare_digest`, so
timing reveals nothing about how much of a token was right.

Roles grant permissions; a key's ``scopes``, when given, narrow its role to
those permissions (they can never widen it). ``metrics:read`` and
``system:read`` describe the whole process, every tenant's traffic in it, so
only admins hold them; a Prometheus scraper gets an admin key narrowed to
``metrics:read`` (``janus keys create --role admin --scopes metrics:read``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import or_, select

from janus_stack.errors import InvalidInputError, NotFoundError
from janus_stack.ids import check_tenant
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import ApiKey, Tenant

TOKEN_PREFIX = "jns_"
_SECRET_BYTES = 32
MAX_TOKEN_CHARS = 200


class Permission(StrEnum):
    DOCUMENTS_READ = "documents:read"
    DOCUMENTS_DOWNLOAD = "documents:download"
    DOCUMENTS_WRITE = "documents:write"
    MEMORY_READ = "memory:read"
    EVENTS_READ = "events:read"
    EVENTS_VERIFY = "events:verify"
    SYSTEM_READ = "system:read"
    METRICS_READ = "metrics:read"
    AGENTS_READ = "agents:read"
    RUNS_READ = "runs:read"
    RUNS_START = "runs:start"
    RUNS_CONTROL = "runs:control"
    KEYS_MANAGE = "keys:manage"
    TENANTS_ANY = "tenants:any"


class Role(StrEnum):
    ADMIN = "admin"
    WRITER = "writer"
    READER = "reader"
    AGENT = "agent"


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.WRITER: frozenset(Permission)
    - {P.EVENTS_VERIFY, P.SYSTEM_READ, P.METRICS_READ, P.KEYS_MANAGE, P.TENANTS_ANY},
    Role.READER: frozenset(
        {P.DOCUMENTS_READ, P.DOCUMENTS_DOWNLOAD, P.MEMORY_READ, P.AGENTS_READ, P.RUNS_READ}
    ),
    # An agent key starts runs and follows them, in its own tenant; it cannot steer them.
    Role.AGENT: frozenset({P.DOCUMENTS_READ, P.MEMORY_READ, P.RUNS_READ, P.RUNS_START}),
}


_PERMISSION_NAMES = frozenset(p.value for p in Permission)


def check_role(role: object) -> Role:
    try:
        return Role(str(role).strip().lower())
    except ValueError:
        raise InvalidInputError(
            f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}"
        ) from None


def check_scopes(role: Role, scopes: Iterable[str]) -> list[str]:
    """Scopes as sorted permission names; each must be one the role has."""
    checked: set[str] = set()
    for scope in scopes:
        for part in str(scope).split(","):
            name = part.strip()
            if not name:
                continue
            try:
                permission = Permission(name)
            except ValueError:
                raise InvalidInputError(
                    f"unknown scope {name!r}; scopes are: {', '.join(p.value for p in Permission)}"
                ) from None
            if permission not in ROLE_PERMISSIONS[role]:
                raise InvalidInputError(
                    f"scope {name!r} is not granted to role {role.value!r}; scopes can only "
                    "narrow a role"
                )
            checked.add(permission.value)
    return sorted(checked)


def granted(role: Role, scopes: Collection[str]) -> frozenset[Permission]:
    """What a key of ``role`` narrowed to ``scopes`` (none: the whole role) may do."""
    permissions = ROLE_PERMISSIONS[role]
    if not scopes:
        return permissions
    return permissions & {Permission(s) for s in scopes if s in _PERMISSION_NAMES}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """A stored key without its secret."""

    id: str
    tenant: str
    name: str
    prefix: str
    role: Role
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def permissions(self) -> frozenset[Permission]:
        return granted(self.role, self.scopes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "prefix": self.prefix,
            "role": self.role.value,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }

    @classmethod
    def of(cls, row: ApiKey) -> KeyRecord:
        return cls(
            id=row.id,
            tenant=row.tenant_id,
            name=row.name,
            prefix=row.prefix,
            role=check_role(row.role),
            scopes=tuple(str(s) for s in (row.scopes or [])),
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )


class KeyStore:
    """Creates, lists, revokes and verifies keys in the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def create(
        self, *, tenant: str, role: str, scopes: Sequence[str] = (), name: str = ""
    ) -> tuple[KeyRecord, str]:
        """A new key and its token (the only time the token exists outside the caller)."""
        check_tenant(tenant)
        chosen = check_role(role)
        checked = check_scopes(chosen, scopes)
        if len(name) > 200:
            raise InvalidInputError("a key name is at most 200 characters")
        key_id = str(uuid.uuid4())
        short = key_id.replace("-", "")[:8]
        token = f"{TOKEN_PREFIX}{short}_{secrets.token_urlsafe(_SECRET_BYTES)}"
        with self.ledger.session() as session:
            if session.get(Tenant, tenant) is None:
                session.add(Tenant(id=tenant, name=tenant))
                session.flush()
            row = ApiKey(
                id=key_id,
                tenant_id=tenant,
                name=name,
                prefix=f"{TOKEN_PREFIX}{short}",
                key_hash=hash_token(token),
                role=chosen.value,
                scopes=checked,
                created_at=datetime.now(UTC),
            )
            session.add(row)
            session.flush()
            record = KeyRecord.of(row)
        return record, token

    def list(self, *, tenant: str | None = None, revoked: bool = False) -> list[KeyRecord]:
        statement = select(ApiKey).order_by(ApiKey.tenant_id, ApiKey.created_at)
        if tenant is not None:
            statement = statement.where(ApiKey.tenant_id == check_tenant(tenant))
        if not revoked:
            statement = statement.where(ApiKey.revoked_at.is_(None))
        with self.ledger.session() as session:
            return [KeyRecord.of(row) for row in session.scalars(statement)]

    def revoke(self, key: str, *, tenant: str | None = None) -> KeyRecord:
        """Revoke by ID or prefix (``jns_ab12cd34``); revoking twice is a no-op.

        With ``tenant`` only that tenant's keys are found (another's is "no API key").
        """
        if not key or len(key) > 64:
            raise InvalidInputError("give a key ID or prefix from `janus keys list`")
        statement = select(ApiKey).where(or_(ApiKey.id == key, ApiKey.prefix == key))
        if tenant is not None:
            statement = statement.where(ApiKey.tenant_id == check_tenant(tenant))
        with self.ledger.session() as session:
            rows = list(session.scalars(statement))
            if not rows:
                raise NotFoundError(f"no API key {key!r}", hint="`janus keys list` shows them")
            if len(rows) > 1:
                raise InvalidInputError(f"{key!r} names {len(rows)} keys; use the full key ID")
            row = rows[0]
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            session.flush()
            return KeyRecord.of(row)

    def verify(self, token: str) -> KeyRecord | None:
        """The live key ``token`` belongs to, or None (unknown, malformed or revoked)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = hash_token(token)
        with self.ledger.session() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
            if row is None or not hmac.compare_digest(row.key_hash, digest):
                return None
            if row.revoked_at is not None:
                return None
            return KeyRecord.of(row)

"""The deterministic IDs every store shares (ARCHITECTURE.md §1.3).

Because each ID is a pure function of content, any stage can be re-run after
a crash and its writes land on the same keys: upserts, never duplicates.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid

from janus_stack.errors import InvalidInputError

NAMESPACE = uuid.UUID("6f1c2a8e-4b7d-5e3f-9a21-0c8d7e6b5a49")
_TENANT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def check_tenant(tenant: str) -> str:
    """Return ``tenant`` if it is a valid tenant name, else raise.

    Tenants appear in object keys, payloads and graph properties, so they
    are restricted to a safe, short alphabet. Names starting with ``_`` are
    reserved for Janus itself (``_doctor`` holds the probes of ``janus doctor``).
    """
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise InvalidInputError(
            f"invalid tenant {tenant!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter, digit or '_'"
        )
    return tenant


def doc_id(tenant: str, data: bytes) -> str:
    """sha256 over the tenant and the raw bytes, hex."""
    digest = hashlib.sha256(check_tenant(tenant).encode() + b"\0")
    digest.update(data)
    return digest.hexdigest()


def content_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunk_id(doc: str, ordinal: int, text: str) -> str:
    text_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return str(uuid.uuid5(NAMESPACE, f"chunk:{doc}:{ordinal}:{text_hash}"))


def normalise_name(name: str) -> str:
    """Case-, width- and whitespace-insensitive form of an entity name."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return " ".join(folded.split())


def entity_id(tenant: str, name: str, entity_type: str) -> str:
    key = f"entity:{check_tenant(tenant)}:{normalise_name(name)}:{entity_type.upper()}"
    return str(uuid.uuid5(NAMESPACE, key))


def relation_id(tenant: str, source_id: str, relation_type: str, target_id: str) -> str:
    key = f"relation:{check_tenant(tenant)}:{source_id}:{relation_type.upper()}:{target_id}"
    return str(uuid.uuid5(NAMESPACE, key))

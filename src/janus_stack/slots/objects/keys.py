"""Object keys and the per-object values every backend stores: checked once, here.

A key is ``"{tenant}/{sha256}"``; metadata and content type are limited to
what S3 can carry in headers, so an object moves between backends unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import quote

from janus_stack.errors import InvalidInputError
from janus_stack.ids import check_tenant

# S3 caps user metadata at 2 KB per object; the same cap on every backend
# keeps an object portable between them (after the encoding S3 needs).
MAX_METADATA_BYTES = 1536

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTENT_TYPE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,254}")
# Printable ASCII stays readable in S3 headers; '%' and ' ' must be escaped.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def make_key(tenant: str, sha256: str) -> str:
    return f"{tenant}/{sha256}"


def split_key(key: str) -> tuple[str, str]:
    """Return ``(tenant, sha256)`` of a key, or raise ``InvalidInputError`` naming it."""
    if not isinstance(key, str) or key.count("/") != 1:
        raise InvalidInputError(
            f"objects slot: malformed key {key!r}: expected '<tenant>/<sha256 hex>'"
        )
    tenant, digest = key.split("/")
    try:
        check_tenant(tenant)
    except InvalidInputError as exc:
        raise InvalidInputError(f"objects slot: malformed key {key!r}: {exc}") from exc
    if not _SHA256.fullmatch(digest):
        raise InvalidInputError(
            f"objects slot: malformed key {key!r}: the part after '/' must be "
            "64 lowercase hex digits (a sha256)"
        )
    return tenant, digest


def encode_metadata(metadata: Mapping[str, str]) -> str:
    """One ASCII header-safe string for the user metadata (what S3 stores)."""
    text = json.dumps(dict(metadata), ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    return quote(text, safe=_HEADER_SAFE)


def check_metadata(metadata: Mapping[str, str] | None, tenant: str) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(
            f"objects slot: metadata for tenant {tenant!r} must be a mapping of str to str, "
            f"not {type(metadata).__name__}"
        )
    checked: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise InvalidInputError(
                f"objects slot: metadata entry {name!r}: {value!r} for tenant {tenant!r} "
                "is not a non-empty str key with a str value"
            )
        checked[name] = value
    size = len(encode_metadata(checked))
    if size > MAX_METADATA_BYTES:
        raise InvalidInputError(
            f"objects slot: metadata for tenant {tenant!r} is {size} bytes encoded; "
            f"the limit is {MAX_METADATA_BYTES} (S3 caps user metadata at 2 KB)",
            hint="keep large descriptive data in the ledger, not on the object",
        )
    return checked


def check_content_type(content_type: str, tenant: str) -> str:
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type):
        raise InvalidInputError(
            f"objects slot: content_type {content_type!r} for tenant {tenant!r} must be "
            "1-255 printable ASCII characters, e.g. 'text/plain; charset=utf-8'"
        )
    return content_type

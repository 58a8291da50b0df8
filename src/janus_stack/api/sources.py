"""A document's source as a client sees it, and back to the ledger's.

The ledger identifies a document by its source: a file that ``janus ingest``
read on the server's machine by its resolved path, an upload by
``JANUS_HOME/uploads/<tenant>/<name>`` (a name space: nothing is written
there). Neither path is a client's business. The first tells every key of
the tenant how the server's disks are laid out; the second is an artefact of
filing, and differs between servers. A client sees the source as it was
given to Janus:

* an upload: the name it was uploaded under, which may be a relative path
  (``a/x.md``: ``janus --server URL ingest`` sends each file's path as
  given, so ``a/x.md`` and ``b/x.md`` stay two documents);
* a file ingested on the server: its file name. Whoever ingested it chose
  that; the folders above it belong to the server.

The API and the in-process ``janus mcp`` show sources this way in search
hits, citations, topic memories and document listings, and accept them back
in the ``source`` filter and the listing's ``name`` filter. A file ingested
on the server can still be filtered by its full path, which whoever ingested
it knows.
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_

from janus_stack.errors import InvalidInputError
from janus_stack.ledger.models import Document

MAX_NAME_BYTES = 1024
MAX_PART_BYTES = 255


def check_name(name: object) -> str:
    """An upload name: a relative path of plain parts (no ``..``, root, backslash or controls).

    The parts keep two files called ``x.md`` in different folders apart;
    refusing ``..``, a leading ``/`` and ``\\`` keeps every name inside the
    tenant's upload space, whatever a client sends.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(
            "the upload needs a file name", hint="send it as the file part's filename"
        )
    text = unicodedata.normalize("NFC", name.strip())
    parts = text.split("/")
    if "\\" in text or text.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(
            f"file name {name!r} is not a relative path of plain names; give a file name or "
            "a path such as 'notes/x.md', without '..', a leading '/' or '\\\\'"
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text):
        raise InvalidInputError(f"file name {name!r} contains control characters")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES or any(
        len(part.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES for part in parts
    ):
        raise InvalidInputError(
            f"file name is longer than {MAX_NAME_BYTES} bytes, or one of its parts than "
            f"{MAX_PART_BYTES}"
        )
    return text


class Sources:
    """Translates sources between the ledger and the clients of one tenant.

    Args:
        folder: the tenant's upload space, ``JANUS_HOME/uploads/<tenant>`` resolved.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._prefix = f"{folder}/"

    def ledger(self, name: str) -> str:
        """The ledger's source of the upload called ``name`` (checked with :func:`check_name`)."""
        return str(self.folder / check_name(name))

    def public(self, source: str) -> str:
        """The source a client sees (see the module's docstring)."""
        if source.startswith(self._prefix):
            return source[len(self._prefix) :]
        return PurePosixPath(source).name

    def filters(self, given: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """``given`` with a ``source`` filter naming an upload turned into the ledger's source.

        Any other value (a server path, something malformed) is left for the
        filter's own checks, which name the problem.
        """
        if given is None:
            return None
        found = dict(given)
        value = found.get("source")
        if isinstance(value, str) and not value.startswith("/"):
            with contextlib.suppress(InvalidInputError):
                found["source"] = self.ledger(value)
        return found

    def name_matches(self, name: str) -> ColumnElement[bool]:
        """Documents whose public source is ``name``: that upload, or a server file so called."""
        upload = Document.source == self.ledger(name)
        if "/" in name:
            return upload
        server_file = and_(
            not_(Document.source.startswith(self._prefix, autoescape=True)),
            Document.source.endswith(f"/{name}", autoescape=True),
        )
        return or_(upload, server_file)

    def hits(self, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Search hits (``Hit.as_dict``) with public sources, changed in place."""
        for hit in hits:
            hit["document"]["source"] = self.public(hit["document"]["source"])
        return hits

    def answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        """An answer (``Answer.as_dict``) whose citations show public sources, in place."""
        for citation in answer.get("citations", []):
            citation["document"]["source"] = self.public(citation["document"]["source"])
        return answer

    def memory(self, view: dict[str, Any]) -> dict[str, Any]:
        """A topic's memory (``TopicMemory.as_dict``) with public sources, in place."""
        self.hits(view.get("chunks", []))
        for document in view.get("documents", []):
            document["source"] = self.public(document["source"])
        return view

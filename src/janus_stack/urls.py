"""Slot URLs: parsing, secret references and redaction.

A slot URL may carry secrets in two ways: literally (``redis://:pw@host``)
or as a reference resolved at start-up (``redis://:env:REDIS_PW@host``,
``postgresql+psycopg://janus:file:/run/secrets/pg@db/janus``). A whole URL
may also be a reference (``env:JANUS_DB``). The resolved text is only ever
handed to client libraries; everything printed or logged uses ``redacted``,
which keeps references visible (they name where the secret lives, not the
secret) and masks literal passwords and secret-looking query values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from janus_stack.errors import ConfigError, SlotURLError

MASK = "***"
_REF = re.compile(r"(?:env:(?P<env>[A-Za-z_][A-Za-z0-9_]*))|(?:file:(?!//)(?P<file>/[^@?&#\s]+))")
_HOME_PATH = re.compile(r"^([a-z][a-z0-9+.-]*:///?)~(?=/|$)")
_SECRET_PARAMS = re.compile(r"pass|secret|token|key|credential|auth", re.IGNORECASE)


def _resolve_ref(match: re.Match[str], environ: Mapping[str, str]) -> str:
    if name := match.group("env"):
        if name not in environ:
            raise ConfigError(
                f"secret reference env:{name} names an unset environment variable",
                hint=f"export {name}=... or change the reference",
            )
        return environ[name]
    path = Path(match.group("file"))
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"secret reference file:{path} cannot be read: {exc.strerror}",
            hint="check the path and its permissions",
        ) from exc


def resolve_references(text: str, environ: Mapping[str, str] | None = None) -> tuple[str, set[str]]:
    """Replace every ``env:``/``file:`` reference; return the text and the secrets found."""
    env = os.environ if environ is None else environ
    secrets: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        value = _resolve_ref(match, env)
        if value:
            secrets.add(value)
        return value

    return _REF.sub(substitute, text), secrets


def redact(text: str) -> str:
    """Mask literal passwords and secret-looking query values of a URL-ish string."""
    parts = urlsplit(text)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            user, password = userinfo.split(":", 1)
            if not _REF.fullmatch(password):
                password = MASK
            userinfo = f"{user}:{password}"
        netloc = f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = [
            (k, MASK if _SECRET_PARAMS.search(k) and not _REF.fullmatch(v) else v)
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe=":/~*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class SlotURL:
    """A parsed, resolved slot URL.

    Attributes:
        slot: the slot it configures (``objects``, ``vectors`` …).
        raw: the text as configured, references unresolved.
        resolved: the text with references resolved; give only to clients.
        secrets: the secret values it contains, for log scrubbing.
    """

    slot: str
    raw: str = field(repr=False)
    resolved: str = field(repr=False)
    secrets: frozenset[str] = field(default=frozenset(), repr=False)

    @classmethod
    def parse(cls, slot: str, raw: str, *, environ: Mapping[str, str] | None = None) -> SlotURL:
        text = raw.strip()
        if not text:
            raise SlotURLError(f"slot {slot!r}: the URL is empty")
        resolved, secrets = resolve_references(text, environ)
        resolved = _HOME_PATH.sub(lambda m: m.group(1) + str(Path.home()), resolved)
        parts = urlsplit(resolved)
        if not parts.scheme or not re.fullmatch(r"[a-z][a-z0-9+.-]*", parts.scheme):
            raise SlotURLError(
                f"slot {slot!r}: {redact(text)!r} is not a URL (no scheme)",
                hint="write it as scheme://..., e.g. the examples in `janus config show`",
            )
        try:
            _ = parts.port
        except ValueError as exc:
            raise SlotURLError(f"slot {slot!r}: {redact(text)!r} has an invalid port") from exc
        if parts.password:
            secrets.add(parts.password)
        secrets.update(v for k, v in parse_qsl(parts.query) if v and _SECRET_PARAMS.search(k))
        return cls(slot=slot, raw=text, resolved=resolved, secrets=frozenset(secrets))

    @property
    def scheme(self) -> str:
        return urlsplit(self.resolved).scheme

    @property
    def redacted(self) -> str:
        return redact(self.raw)

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.resolved).query, keep_blank_values=True))

    @property
    def path(self) -> Path:
        """The local filesystem path of a ``scheme://path`` URL (embedded backends)."""
        parts = urlsplit(self.resolved)
        location = parts.netloc + parts.path
        if not location:
            raise SlotURLError(f"slot {self.slot!r}: {self.redacted!r} names no path")
        return Path(location).expanduser()

    def without_query(self) -> str:
        parts = urlsplit(self.resolved)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"SlotURL({self.slot!r}, {self.redacted!r})"

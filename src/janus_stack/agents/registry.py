"""The agent registry: every manifest in the agents directories, reloaded when it changes.

Adding an agent is adding a file: ``JANUS_HOME/agents/*.yaml`` (plus any
directory handed to the registry, e.g. ``janus --home H agents --dir D``).
Each lookup stats the files (cheap) and re-parses only those whose
modification time or size changed, so a long-running process (``janus
serve``, a worker) sees edits without a restart. An invalid file is kept
out of the registry with its problems, which ``janus agents validate``
prints with file, line and field.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from janus_stack.agents.manifest import AgentManifest, check_manifest
from janus_stack.agents.sourcefile import Problem, SourceFile, SpecError, read_file
from janus_stack.agents.tools import Toolbox
from janus_stack.errors import NotFoundError

SUFFIXES = (".yaml", ".yml", ".json")
AGENTS_PATH_ENV = "JANUS_AGENTS_PATH"


def agent_directories(home: Path, extra: Iterable[Path] = ()) -> list[Path]:
    """Where agents live: ``home/agents``, each ``JANUS_AGENTS_PATH`` entry (``:``), ``extra``."""
    dirs = [home / "agents"]
    dirs += [Path(p).expanduser() for p in os.environ.get(AGENTS_PATH_ENV, "").split(":") if p]
    dirs += [Path(p).expanduser() for p in extra]
    return dirs


@dataclass
class AgentEntry:
    path: Path
    stamp: tuple[int, int]
    manifest: AgentManifest | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.manifest is not None and not self.problems


def load_manifest(
    source: SourceFile, toolbox: Toolbox, allowed_tenants: Collection[str] | None = None
) -> AgentManifest:
    """Validate one parsed manifest; SpecError lists every problem, located."""
    manifest = source.validate(AgentManifest)
    problems = check_manifest(
        source,
        manifest,
        known_tools=toolbox.names(),
        writing_tools=toolbox.writing(),
        allowed_tenants=allowed_tenants,
    )
    if problems:
        raise SpecError(problems)
    return manifest


class AgentRegistry:
    """Agents by name, from manifest files in ``directories`` (later ones win nothing:
    a name defined twice is a problem of the second file)."""

    def __init__(
        self,
        directories: Iterable[Path],
        toolbox: Toolbox,
        *,
        allowed_tenants: Collection[str] | None = None,
    ) -> None:
        self.directories = [Path(d) for d in directories]
        self.toolbox = toolbox
        self.allowed_tenants = None if allowed_tenants is None else set(allowed_tenants)
        self._entries: dict[Path, AgentEntry] = {}
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        found: list[Path] = []
        for directory in self.directories:
            if directory.is_dir():
                found.extend(
                    sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())
                )
        return found

    def refresh(self) -> list[AgentEntry]:
        """Re-read changed files, forget removed ones; returns every entry in file order."""
        with self._lock:
            files = self._files()
            for gone in set(self._entries) - set(files):
                del self._entries[gone]
            entries: list[AgentEntry] = []
            names: dict[str, Path] = {}
            for path in files:
                try:
                    info = path.stat()
                except OSError:
                    continue
                stamp = (info.st_mtime_ns, info.st_size)
                entry = self._entries.get(path)
                if entry is None or entry.stamp != stamp:
                    entry = self._load(path, stamp)
                    self._entries[path] = entry
                entry.problems = [p for p in entry.problems if not p.message.startswith("agent ")]
                if entry.manifest is not None:
                    first = names.setdefault(entry.manifest.name, path)
                    if first != path:
                        entry.problems.append(
                            Problem(
                                str(path),
                                1,
                                "name",
                                f"agent {entry.manifest.name!r} is already defined in {first}",
                            )
                        )
                entries.append(entry)
            return entries

    def _load(self, path: Path, stamp: tuple[int, int]) -> AgentEntry:
        entry = AgentEntry(path, stamp)
        try:
            entry.manifest = load_manifest(read_file(path), self.toolbox, self.allowed_tenants)
        except SpecError as exc:
            entry.problems = exc.problems
        return entry

    def agents(self) -> dict[str, AgentManifest]:
        return {
            entry.manifest.name: entry.manifest
            for entry in self.refresh()
            if entry.manifest is not None and entry.valid
        }

    def get(self, name: str) -> AgentManifest:
        entries = self.refresh()
        for entry in entries:
            if entry.manifest is not None and entry.manifest.name == name:
                if entry.problems:
                    raise SpecError(
                        entry.problems, hint="fix the manifest; `janus agents validate`"
                    )
                return entry.manifest
        broken = [e for e in entries if e.manifest is None and e.path.stem == name]
        if broken:
            raise SpecError(broken[0].problems, hint="fix the manifest; `janus agents validate`")
        where = ", ".join(str(d) for d in self.directories) or "no directory"
        raise NotFoundError(
            f"no agent named {name!r} in {where}",
            hint="add a manifest file there; `janus agents list` shows the known agents",
        )

    def problems(self) -> list[Problem]:
        return [problem for entry in self.refresh() for problem in entry.problems]

"""Turn the PATH arguments of ``janus ingest`` into a sorted list of files."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

_WILDCARDS = set("*?[")


def expand_paths(arguments: Sequence[str], *, recursive: bool) -> tuple[list[Path], list[str]]:
    """Files to ingest and the arguments that matched nothing.

    Directories contribute their files (all descendants with ``recursive``);
    globs are expanded (``**`` only with ``recursive``). Hidden files and
    folders are skipped: they are editor and VCS state, not documents.
    """
    files: dict[Path, None] = {}
    missing: list[str] = []
    for argument in arguments:
        if _WILDCARDS & set(argument):
            matches = [Path(m) for m in sorted(glob.glob(argument, recursive=recursive))]
        else:
            matches = [Path(argument)] if Path(argument).exists() else []
        if not matches:
            missing.append(argument)
        for match in matches:
            if match.is_dir():
                pattern = "**/*" if recursive else "*"
                for child in sorted(match.glob(pattern)):
                    relative = child.relative_to(match).parts
                    if child.is_file() and not any(part.startswith(".") for part in relative):
                        files[child] = None
            elif match.is_file():
                files[match] = None
    return list(files), missing

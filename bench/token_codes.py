"""The late re-rank's token codes in other layouts: dev-set rankings and re-rank cost, without embedding again.

    .venv/bin/python bench/token_codes.py --work DIR [--corpora hecto,pdfdocs] [--layouts 48x8,32x8,96x4] [--json F]

Each corpus is indexed once into DIR with its token vectors left in int8 (no codebook). Then, per layout MxB (M
slices of 384/M dimensions, a B-bit code each: M·B/8 bytes a token), a codebook is trained as a build trains one
(the same sample, rounds and seed, centroids stored in float16) and the index's tokens are served, decoded from
those codes, in place of the int8 ones; int8 itself is the first row. Prints the R@1 (in queries) of the three
rows bench/quality.py compares, and how long one re-rank's decode and MaxSim product takes under each layout
(the token rows of 40 random parts, a 20-token question; layouts alternate, median of 5 rounds of 200).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
from corpora import CORPORA, materialise
from quality import COMPARED, VARIANTS

from retriever import Retriever
from retriever.index import tokencodes
from retriever.local import store
from retriever.search.evaluation import evaluate, read_queries


def layout_codebook(rows: np.ndarray, slices: int, bits: int) -> faiss.ProductQuantizer:
    """A quantiser trained as `Codebook.train` trains one, with its centroids rounded to float16 as stored."""
    quantiser = faiss.ProductQuantizer(rows.shape[1], slices, bits)
    quantiser.cp.niter = tokencodes.TRAIN_ROUNDS
    quantiser.cp.min_points_per_centroid = 16
    quantiser.cp.max_points_per_centroid = max(256, tokencodes.MAX_TRAIN >> bits)  # the whole sample, at any bits
    with tokencodes.blas_distances(faiss):
        quantiser.train(np.ascontiguousarray(tokencodes.token_floats(tokencodes.training_sample(rows), None)))
    rounded = faiss.vector_to_array(quantiser.centroids).astype(np.float16).astype(np.float32)
    faiss.copy_array_to_vector(rounded, quantiser.centroids)
    return quantiser


def decoder(quantiser: faiss.ProductQuantizer) -> tuple[np.ndarray, int, int]:
    slices, bits = quantiser.M, quantiser.nbits
    return faiss.vector_to_array(quantiser.centroids).reshape(slices, 1 << bits, -1), slices, bits


def decode(codes: np.ndarray, centroids: np.ndarray, slices: int, bits: int) -> np.ndarray:
    """Unit vectors from codes, in numpy as a question decodes them (two 4-bit codes a byte, low nibble first)."""
    if bits == 8:
        index = codes.astype(np.intp)
    else:
        index = np.empty((len(codes), slices), np.intp)
        index[:, 0::2], index[:, 1::2] = codes & 15, codes >> 4
    rows = centroids[np.arange(slices), index].reshape(len(codes), -1)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def int8_index(notes: Path, index: Path) -> Path:
    """The corpus indexed with its token vectors in int8 (no codebook trained); its live generation."""
    trained = tokencodes.Codebook.__dict__["train"]
    tokencodes.Codebook.train = classmethod(lambda cls, vectors: None)  # type: ignore[method-assign,assignment]
    try:
        Retriever(notes, index, models=list(VARIANTS[COMPARED[-1]][0])).index()
    finally:
        tokencodes.Codebook.train = trained  # type: ignore[method-assign]
    return index / (index / "CURRENT").read_text().strip()


def ranked(notes: Path, index: Path, queries: list, served: dict[str, np.ndarray]) -> dict[str, int]:
    """R@1 in queries of each compared row, with these token segments (by file name) served instead of the files."""
    mapped = store.mapped
    store.mapped = lambda path: served[path.name] if path.name in served else mapped(path)  # type: ignore[assignment]
    try:
        found = {}
        for variant in COMPARED:
            models, settings = VARIANTS[variant]
            retriever = Retriever(notes, index, models=list(models), auto_update=False)
            retriever.ranking = replace(settings)
            overall = evaluate(queries, retriever.ask).overall
            found[variant] = round(overall.recall_at_1 * overall.n)
        return found
    finally:
        store.mapped = mapped


def rerank_ms(segment: np.ndarray, spans: np.ndarray, layouts: dict[str, tuple[np.ndarray, np.ndarray, int, int]]):
    """Median ms of one re-rank's decode and MaxSim product per layout, the layouts alternating."""
    rng = np.random.default_rng(0)
    question = rng.normal(size=(20, segment.shape[1])).astype(np.float32)
    picks = [spans[rng.choice(len(spans), min(40, len(spans)), replace=False)] for _ in range(200)]
    times: dict[str, list[float]] = {name: [] for name in layouts}
    for _ in range(5):
        for name, (codes, centroids, slices, bits) in layouts.items():
            started = time.perf_counter()
            for pick in picks:
                blocks = [
                    decode(codes[a:b], centroids, slices, bits) if slices else tokencodes.token_floats(codes[a:b], None)
                    for _, a, b in pick
                ]
                question @ np.concatenate(blocks).T
            times[name].append((time.perf_counter() - started) / len(picks) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True, help="where the corpora and int8 indexes go (kept)")
    parser.add_argument("--corpora", default=",".join(CORPORA))
    parser.add_argument("--layouts", default="48x8,32x8,24x8,96x4,64x4,48x4")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, object]] = {}
    for corpus in args.corpora.split(","):
        kept = args.work / corpus
        notes, queries_file = (kept, CORPORA[corpus][1]) if kept.is_dir() else materialise(args.work, [corpus])[corpus]
        generation = int8_index(notes, args.work / f"{corpus}-index")
        manifest = json.loads((generation / "manifest.json").read_text(encoding="utf-8"))
        segments = {f"{name}.npy": np.load(generation / f"{name}.npy") for name in manifest["segments"]}
        if not segments:
            continue
        rows = np.concatenate(list(segments.values()))
        queries = read_queries(queries_file)
        row: dict[str, object] = {"tokens": len(rows), "int8": ranked(notes, generation.parent, queries, {})}
        coded = {"int8": (rows, np.zeros(0), 0, 0)}
        for layout in args.layouts.split(","):
            slices, bits = (int(n) for n in layout.split("x"))
            if len(rows) < 16 << bits:
                continue
            quantiser = layout_codebook(rows, slices, bits)
            centroids = decoder(quantiser)
            served = {}
            for name, segment in segments.items():
                unit = decode(quantiser.compute_codes(tokencodes.token_floats(segment, None)), *centroids)
                served[name] = unit * np.float32(tokencodes.INT8_SCALE)  # as token_floats reads int8 rows back
            row[layout] = ranked(notes, generation.parent, queries, served)
            coded[layout] = (quantiser.compute_codes(tokencodes.token_floats(rows, None)), *centroids)
        spans = np.load(generation / "m0.part_token_spans.npy")
        starts = np.cumsum([0] + [len(segment) for segment in segments.values()])[spans[:, 0]]
        spans[:, 1:] += starts[:, None]  # rows of the concatenated segments
        row["rerank_ms"] = rerank_ms(rows, spans, coded)
        results[corpus] = row
        print(corpus, json.dumps(row, ensure_ascii=False), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()

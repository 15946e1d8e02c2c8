"""What filters cost a question: `ask` latency under path and date filters that keep 1 %, 50 % and ~all of a
generated corpus, each beside the unfiltered question measured in the same run (the reference), as p50/p95 and a
ratio. A filter that keeps more chunks than a channel's candidates is scored exactly over what it keeps.

    .venv/bin/python bench/filters.py [--notes 10000] [--runs 30]
"""

from __future__ import annotations

import argparse

from run import QUESTION, latencies, many_notes_corpus

from retriever.api import Retriever

FILTERS = {  # generated notes sit in 100 folders 00..99
    "no filter (reference)": {},
    "--path 00/ (1 %)": {"path": "00/"},
    "--path [0-4]?/ (50 %)": {"path": "[0-4]?/"},
    "--path *.md (100 %)": {"path": "*.md"},
    "--since 2000-01-01 (100 %)": {"since": "2000-01-01"},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    notes, index = many_notes_corpus(args.notes)
    api = Retriever(notes, index)
    api.index()
    chunks = len(api.loaded().manifest.chunks)
    times = latencies({name: lambda f=f: api.ask(QUESTION, 5, **f) for name, f in FILTERS.items()}, args.runs)
    base = times["no filter (reference)"][0]
    print(f"{args.notes} notes, {chunks} chunks; ask p50 / p95, and p50 against the unfiltered question")
    for name, (p50, p95) in times.items():
        print(f"{name:>28}: {p50 * 1000:7.1f} ms / {p95 * 1000:7.1f} ms   {p50 / base:5.2f}x")


if __name__ == "__main__":
    main()

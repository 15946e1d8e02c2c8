"""The lexical channel: BM25 (bm25s) over Kiwi morphemes, for exact terms the dense models blur.

Korean glues particles and endings onto words (배치사이즈는, 정하나요), so whitespace tokens rarely match across
question and note; Kiwi's morphemes do. Latin-script words come through Kiwi as foreign tokens and are lower-cased,
so English terms inside Korean notes (lr, bert, GPU) match too.

bm25s builds and saves the index; a question reads its files without it (see `Postings`), since `import bm25s`
imports scipy.sparse, for a sum of a few columns: a cold question took 2.27 CPU-s with it and 2.08 without
(0.92×, same run, docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np

from ..reading.korean import UNBROKEN_RUN, kiwi
from ..reading.language import is_korean
from .integrity import save_array

# content-bearing parts of speech: nouns, verb/adjective stems, roots, foreign words, numbers, Hanja
CONTENT_TAGS = ("NNG", "NNP", "NNB", "NR", "VV", "VA", "XR", "SL", "SN", "SH", "MAG")


@cache
def stopwords() -> frozenset[str]:
    """bm25s's own English and Korean lists: question words (what, how, 무엇) carry no topic.

    Read from bm25s's stopwords.py alone (plain tuples, no imports), not as `bm25s.stopwords`, whose import runs the
    package's __init__ and so imports scipy.sparse: 0.375 CPU-s for numpy and bm25s against 0.199 for numpy and
    this module. The lists stay bm25s's own, one copy that a build and a question read alike, rather than a copy of
    its 678 words here to keep in step; the file takes ~1 ms."""
    package = importlib.util.find_spec("bm25s")  # finds the package without importing it
    if package is None or not package.submodule_search_locations:
        raise ModuleNotFoundError("bm25s is not installed")
    spec = importlib.util.spec_from_file_location(
        "bm25s.stopwords", Path(package.submodule_search_locations[0]) / "stopwords.py"
    )
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError("bm25s has no stopwords.py")
    lists = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lists)
    return frozenset(lists.STOPWORDS_EN_PLUS) | frozenset(lists.STOPWORDS_KOREAN)


def tokenize(text: str) -> list[str]:
    """Lower-cased content morphemes, and each unbroken run (see korean.UNBROKEN) whole, as one token."""
    return [form for form, _, _ in located_tokens(text)]


RECENT_TEXTS = 256  # questions and shown passages whose tokens a warm process keeps: ~10 MB at most


@lru_cache(maxsize=RECENT_TEXTS)
def recent_tokens(text: str) -> tuple[tuple[str, int, int], ...]:
    """located_tokens of a question or a passage shown as a hit, kept for the next question. Kiwi was a fifth of
    a warm question (seven analyses: the question for BM25 and again for highlighting, then each of five hits), and
    a warm server shows the same passages again and again. A build tokenises each passage once and does not come
    here."""
    return tuple(located_tokens(text))


def located_tokens(text: str) -> Iterator[tuple[str, int, int]]:
    """Each token with the characters of `text` it was read from."""
    start = 0
    for run in UNBROKEN_RUN.finditer(text):
        yield from morphemes(text[start : run.start()], start)
        yield run.group().lower(), run.start(), run.end()
        start = run.end()
    yield from morphemes(text[start:], start)


def morphemes(text: str, offset: int) -> Iterator[tuple[str, int, int]]:
    """Verb and adjective stems get 다 so 정하나요 and 정하는 meet at 정하다."""
    for token in kiwi().tokenize(text):
        tag = token.tag.split("-")[0]  # Kiwi marks irregular conjugations as VV-R / VV-I
        if tag.startswith(CONTENT_TAGS):
            form = token.form.lower() + ("다" if tag in ("VV", "VA") else "")
            if form not in stopwords():
                yield form, offset + token.start, offset + token.start + token.len


def highlights(text: str, wanted: set[str]) -> tuple[tuple[int, int], ...]:
    """The character spans of `text` that are words of the question (`wanted`: its tokens), by morpheme as BM25
    matches them (정하는 for 정하나요), and compounds holding one (배치사이즈는 for 배치 사이즈), adjacent spans joined."""
    parts = [word for word in wanted if len(word) > 1]
    spans: list[tuple[int, int]] = []
    for form, start, end in recent_tokens(text):
        if form in wanted or any(word in form for word in parts):
            if spans and text[spans[-1][1] : start].strip() == "":
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
    return tuple(spans)


def quiet_bm25s() -> ModuleType:
    """bm25s sets its own logger to DEBUG, so any handler on the root logger (a user's, or a library's
    basicConfig) would print its progress lines."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


@dataclass
class LexicalScores:
    """Scores of every chunk at once: from local files, scoring them all is one vectorised pass."""

    scores: np.ndarray  # one BM25 score per document
    coverage: float  # share of the question's tokens that occur anywhere in the corpus
    foreign: float = 0.0  # share of them that a passage in another language than Korean could hold (see term_ids)

    def top(self, n: int) -> np.ndarray:
        return np.argsort(-self.scores, kind="stable")[:n]

    def of(self, rows: np.ndarray) -> np.ndarray:
        return self.scores[rows]


COUNTS = "counts.csc.index.npy"  # how often each (term, chunk) entry of the BM25 matrix occurs in its chunk
DATA, DOCS, POINTERS = "data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy"  # bm25s's names
VOCAB, PARAMS = "vocab.index.json", "params.index.json"
NONOCCURRENCE = ("bm25l", "bm25+")  # bm25s's variants that add a per-term constant outside the matrix


@dataclass(frozen=True)
class Postings:
    """bm25s's BM25 matrix as it saves it, CSC: term t's weights in the chunks that hold it are
    data[pointers[t]:pointers[t + 1]], those chunks' rows docs[pointers[t]:pointers[t + 1]].

    A question's scores are the sum of its terms' columns, so reading the three .npy files as memory maps and adding
    columns as bm25s's get_scores does (same dtype, same order) gives its scores bit for bit without importing it
    (tests/test_lexical.py compares them)."""

    data: np.ndarray
    docs: np.ndarray
    pointers: np.ndarray
    num_docs: int
    dtype: np.dtype

    @classmethod
    def load(cls, folder: Path) -> Postings:
        """ValueError for files that are not a matrix bm25s saved for this reader, OSError for a missing one."""
        params = json.loads((folder / PARAMS).read_text(encoding="utf-8"))
        if (
            not isinstance(params, dict)
            or params.get("method") in NONOCCURRENCE
            or params.get("dtype") not in ("float16", "float32", "float64")
            or not isinstance(params.get("num_docs"), int)
        ):
            raise ValueError(f"{folder / PARAMS} is not a BM25 index this retriever reads")
        data, docs, pointers = (
            np.load(folder / name, allow_pickle=False, mmap_mode="r") for name in (DATA, DOCS, POINTERS)
        )
        if data.ndim != 1 or docs.shape != data.shape or pointers.ndim != 1 or not len(pointers):
            raise ValueError(
                f"the BM25 matrix in {folder} is inconsistent: {data.shape}, {docs.shape}, {pointers.shape}"
            )
        if pointers[0] != 0 or pointers[-1] != len(data):
            raise ValueError(
                f"the BM25 matrix in {folder} is inconsistent: its pointers do not span its {len(data)} entries"
            )
        return cls(data, docs, pointers, params["num_docs"], np.dtype(params["dtype"]))

    @property
    def terms(self) -> int:
        return len(self.pointers) - 1

    def scores(self, ids: list[int]) -> np.ndarray:
        """bm25s's _compute_relevance_from_scores, step for step: repeated ids add their column again."""
        scores = np.zeros(self.num_docs, dtype=self.dtype)
        for term in ids:
            start, end = self.pointers[term], self.pointers[term + 1]
            np.add.at(scores, self.docs[start:end], self.data[start:end])
        return scores


class LexicalIndex:
    """The BM25 matrix and its vocabulary, read from the files bm25s saved (see `Postings`)."""

    def __init__(self, postings: Postings, vocab: dict[str, int]) -> None:
        self.postings = postings
        self.vocab = vocab

    @classmethod
    def build(cls, texts: list[str], keys: list[str], known: dict[str, list[str]]) -> BuiltLexicalIndex:
        """keys are the texts' hashes; known holds tokens of texts an earlier build tokenised."""
        bm25s = quiet_bm25s()
        tokens = [(known[key] if key in known else tokenize(text)) or [""] for key, text in zip(keys, texts)]
        bm25 = bm25s.BM25()
        bm25.index(tokens, show_progress=False)
        return BuiltLexicalIndex(bm25, tokens)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        vocab = json.loads((folder / VOCAB).read_text(encoding="utf-8"))
        postings = Postings.load(folder)
        if not isinstance(vocab, dict) or len(vocab) < postings.terms:
            raise ValueError(f"{folder / VOCAB} names fewer terms than the BM25 matrix in {folder} holds")
        return cls(postings, vocab)

    @staticmethod
    def known_tokens(folder: Path, keys: list[str]) -> dict[str, list[str]]:
        """The tokens of each chunk of the index in folder, by its key (keys: the index's chunk keys, in order), in
        any order: BM25 counts them, it does not read them in order."""
        try:
            index = LexicalIndex.load(folder)
            counts = np.load(folder / COUNTS, allow_pickle=False)
        except (OSError, ValueError):
            return {}
        postings = index.postings
        docs = np.asarray(postings.docs)
        if len(counts) != len(docs) or (len(docs) and docs.max() >= len(keys)):
            return {}  # not this index's: everything is tokenised afresh
        names = sorted(index.vocab, key=index.vocab.get)[: postings.terms]  # bm25s numbers terms from 0, "" last
        terms = np.repeat(np.array(names, dtype=object), np.diff(postings.pointers))
        tokens: list[list[str]] = [[] for _ in keys]
        for doc, term, count in zip(docs.tolist(), terms.tolist(), counts.tolist()):
            tokens[doc] += [term] * count
        return dict(zip(keys, tokens))

    def score(self, question: str) -> LexicalScores:
        return self.scores_of(*self.term_ids(question))

    def scores_of(self, ids: list[int], coverage: float, foreign: float = 0.0) -> LexicalScores:
        """The scores of a question already read into vocabulary ids."""
        if not ids:
            return LexicalScores(np.zeros(self.postings.num_docs, dtype=np.float32), 0.0)
        return LexicalScores(self.postings.scores(ids).astype(np.float32), coverage, foreign)

    def term_ids(self, question: str) -> tuple[list[int], float, float]:
        """The question's known terms as vocabulary ids (repeats kept: each adds its weight again), the share of
        its terms the corpus knows, and the share it knows outside Hangul."""
        return term_ids(self.vocab, question)

    def weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each chunk's BM25 weight per term as CSR rows (data, term ids, row pointers): a score is the sum of
        the weights of the question's terms, so a store with sparse vectors reproduces these scores exactly."""
        postings = self.postings
        indptr = np.asarray(postings.pointers, dtype=np.int64)
        docs = np.asarray(postings.docs, dtype=np.int64)
        terms = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
        order = np.lexsort((terms, docs))
        pointers = np.searchsorted(docs[order], np.arange(postings.num_docs + 1))
        return np.asarray(postings.data, dtype=np.float32)[order], terms[order], pointers.astype(np.int64)


class BuiltLexicalIndex(LexicalIndex):
    """An index bm25s has just computed, to be saved in its files.

    Beside bm25s's files it keeps each entry's term count, from which the next build gets every unchanged chunk's
    tokens back without Kiwi (~2 ms a passage, most of a large corpus's re-index). The tokens as JSON by text hash,
    which this replaces, took 1.1× the text of kobill; the counts take 2 bytes an entry (0.15×).
    """

    def __init__(self, bm25, doc_tokens: list[list[str]]) -> None:
        scores = bm25.scores
        postings = Postings(
            scores["data"], scores["indices"], scores["indptr"], scores["num_docs"], np.dtype(bm25.dtype)
        )
        super().__init__(postings, bm25.vocab_dict)
        self.bm25 = bm25
        self.doc_tokens = doc_tokens

    def save(self, folder: Path) -> None:
        self.bm25.save(str(folder), show_progress=False, allow_pickle=False)
        pointers, docs = np.asarray(self.postings.pointers), np.asarray(self.postings.docs)
        terms = np.repeat(np.arange(len(pointers) - 1), np.diff(pointers))
        per_doc = [Counter(tokens) for tokens in self.doc_tokens]
        names = sorted(self.vocab, key=self.vocab.get)
        counts = [per_doc[doc][names[term]] for doc, term in zip(docs.tolist(), terms.tolist())]
        save_array(folder / COUNTS, np.asarray(counts, dtype=np.uint16), durable=False)


def term_ids(vocab: dict[str, int], question: str) -> tuple[list[int], float, float]:
    """(ids, coverage, foreign coverage). A Hangul word can only be found in a Korean passage, so of a Korean
    question's known words, those written otherwise (API names, numbers, English terms) are all an English
    passage could match: ranking weighs BM25 within English passages by that share, not the whole coverage."""
    tokens = [form for form, _, _ in recent_tokens(question)]
    known = [t for t in tokens if t in vocab]
    if not tokens:
        return [], 0.0, 0.0
    return [vocab[t] for t in known], len(known) / len(tokens), sum(not is_korean(t) for t in known) / len(tokens)

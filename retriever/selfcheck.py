"""One question asked of a generation before it goes live, so that no index is committed that loads but cannot
answer (a token segment of codes without its codebook did exactly that, and every later question failed).

The question is made of the index itself, so no model is needed: the first chunk's stored vector of each model,
the first part's decoded token vectors, and a term of the BM25 vocabulary. It runs through the same ranking a
question does (candidates, dense views, BM25, the late re-rank); every ANN index must find a stored vector as close
as the vector itself, and every token segment must decode.

It asks through the search stage, so it lives above both stages, beside the build half (builder.py), which hands
it to the store's commit: the local store, part of the index layer, names nothing of the search stage downstream.
"""

from __future__ import annotations

import numpy as np

from .index.manifest import COLLECTIONS, SPANS, matrix_name
from .index.tokencodes import token_floats
from .local.loaded import LoadedIndex
from .search.ranking import Query, RankSettings, rank

SAMPLE = 64  # token rows of each segment decoded: a bad codebook or segment fails on its first row
TOLERANCE = 1e-3  # the nearest found may beat the vector's own score by float rounding, never lose


class CheckFailed(ValueError):
    """The generation loaded but did not answer as it must."""


def answers(index: LoadedIndex) -> None:
    """CheckFailed (or the error a question would meet) unless the index answers a question made of itself."""
    if not index.manifest.chunks:
        return
    for model in range(len(index.manifest.models)):
        for collection in COLLECTIONS:
            finds_itself(index, matrix_name(model, collection))
    tokens = None
    if index.has_tokens:
        for segment in index.segments:
            decoded = token_floats(segment[:SAMPLE], index.codebook)
            if not np.isfinite(decoded).all():
                raise CheckFailed("a token segment decodes to non-finite vectors")
        spans = index.extras[SPANS]
        with_tokens = np.flatnonzero(spans[:, 2] > spans[:, 1])
        if len(with_tokens):
            segment, start, stop = spans[with_tokens[0]]
            tokens = token_floats(index.segments[segment][start:stop], index.codebook)
    vocabulary = index.lexical_index.vocab
    lexical = index.lexical_index.scores_of([next(iter(vocabulary.values()))], 1.0) if vocabulary else None
    vectors = {
        model: index.stored(matrix_name(model, "chunks"), slice(0, 1)) for model in range(len(index.manifest.models))
    }
    ranked = rank(Query(index, vectors, tokens, lexical), RankSettings())
    if not len(ranked.rows) or not np.isfinite(ranked.scores).all():
        raise CheckFailed("a question made of the index's own first chunk found nothing, or scored it NaN")


def finds_itself(index: LoadedIndex, matrix: str) -> None:
    """The matrix's ANN index finds, for its first stored vector, a row as close as that vector itself."""
    if not len(index.vectors[matrix][0]):
        return
    vector = index.stored(matrix, slice(0, 1))
    found = index.nearest(matrix, vector, 1)
    own = float(index.scores(matrix, vector[0], np.array([0]))[0])
    if not len(found) or float(index.scores(matrix, vector[0], found[:1])[0]) < own - TOLERANCE:
        raise CheckFailed(f"the ANN index of {matrix} does not find the vectors it was built from")

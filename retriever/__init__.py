"""retriever: offline semantic search over your own notes, in Korean and English."""

from .api import Hit, QuestionHit, Retriever
from .errors import RetrieverError

__all__ = ["Hit", "QuestionHit", "Retriever", "RetrieverError"]

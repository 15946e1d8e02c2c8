"""The default model's query side in plain numpy: a question needs one forward pass of a dozen tokens, which
takes milliseconds, while importing torch and sentence-transformers to run it takes seconds.

It reads the same sentence-transformers folder the indexer uses (safetensors weights, tokenizer.json, prompts,
mean pooling) and runs the same BERT encoder, so its vectors agree with the indexing model's to float precision
(tests assert it). Only the rows of the word-embedding table a question uses are read, so loading costs the
transformer layers alone (~20 M weights), not the 96 M-row vocabulary.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .base import ModelSpec, Role
from .word_table import WORDS, word_rows, word_table


def erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (error < 1.5e-7): numpy has no erf, and exact GELU needs one."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class NumpyBertQueryEncoder:
    """Questions only: passages are embedded in bulk at index time, where torch's throughput pays off."""

    def __init__(self, folder: Path, name: str, source: str) -> None:
        from safetensors import safe_open

        from .unigram import UnigramTokenizer, ensure_tokenizer

        config = json.loads((folder / "config.json").read_text())
        settings = json.loads((folder / "config_sentence_transformers.json").read_text())
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if config.get("model_type") != "bert" or pooling.get("pooling_mode") != "mean":
            raise ValueError(f"{folder} is not a mean-pooled BERT model")
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.max_tokens = int(config["max_position_embeddings"])
        self.tokenizer = UnigramTokenizer(ensure_tokenizer(folder))
        self.prompts: dict[str, str] = dict(settings.get("prompts", {}))
        # <s> and each prompt's tokens, which the pooled token vectors leave out: counted once, not per question
        self.prompt_lengths = {
            role: len(self.tokenizer.encode(prompt)) - 1 if prompt else 1 for role, prompt in self.prompts.items()
        }
        weights = safe_open(str(folder / "model.safetensors"), "np")
        # float32 throughout (a float64 scalar would silently upcast every product); dense weights stored
        # transposed and contiguous, the layout a row-vector product reads fastest
        self.w = {
            key: np.ascontiguousarray(tensor.T if tensor.ndim == 2 and ".layer." in key else tensor, np.float32)
            for key in weights.keys()  # noqa: SIM118 - safe_open is not a mapping
            if key != WORDS
            for tensor in (weights.get_tensor(key),)
        }
        self.words = word_table(folder / "model.safetensors")
        self.layers = int(config["num_hidden_layers"])
        dim = int(config["hidden_size"])
        self.spec = ModelSpec(name, source, dim, {"query": self.prompts["query"], "passage": self.prompts["passage"]})

    def forward(self, ids: list[int]) -> np.ndarray:
        """Last hidden states [tokens, dim] of one unpadded sequence."""
        w, n = self.w, len(ids)
        x = word_rows(self.words, ids) + w["embeddings.position_embeddings.weight"][:n]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        head = x.shape[1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return h @ w[f"{p}{name}.weight"] + w[f"{p}{name}.bias"]

            q, k, v = (
                dense(x, f"attention.self.{m}").reshape(n, self.heads, head).transpose(1, 0, 2)
                for m in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 2, 1) * (1.0 / math.sqrt(head))
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            context = (scores / scores.sum(axis=-1, keepdims=True)) @ v
            attended = dense(context.transpose(1, 0, 2).reshape(n, -1), "attention.output.dense")
            x = layer_norm(
                attended + x,
                w[f"{p}attention.output.LayerNorm.weight"],
                w[f"{p}attention.output.LayerNorm.bias"],
                self.eps,
            )
            inner = dense(x, "intermediate.dense")
            inner = 0.5 * inner * (1.0 + erf(inner * (1.0 / math.sqrt(2.0))))
            x = layer_norm(
                dense(inner, "output.dense") + x,
                w[f"{p}output.LayerNorm.weight"],
                w[f"{p}output.LayerNorm.bias"],
                self.eps,
            )
        return x

    def encode_with_tokens(
        self, texts: Sequence[str], role: Role, on_batch: Callable[[int], None] | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Like the sentence-transformers encoder: mean-pooled unit vectors, and each text's unit token vectors
        with prompt and special tokens dropped (float16, as stored)."""
        prompt_length = self.prompt_lengths.get(role, 1)
        vectors = np.zeros((len(texts), self.spec.dim), dtype=np.float32)
        tokens = []
        for row, text in enumerate(texts):
            hidden = self.forward(self.ids(text, role))
            pooled = hidden.mean(axis=0)
            vectors[row] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
            own = hidden[prompt_length:-1]
            tokens.append((own / np.maximum(np.linalg.norm(own, axis=1, keepdims=True), 1e-12)).astype(np.float16))
            if on_batch:
                on_batch(1)
        return vectors, tokens

    def ids(self, text: str, role: Role) -> list[int]:
        """The model's input for text in this role: prompt, special tokens, truncated as the model's tokenizer
        truncates (keep the start, end with </s>)."""
        ids = self.tokenizer.encode(self.prompts.get(role, "") + text)
        return ids[: self.max_tokens - 1] + ids[-1:] if len(ids) > self.max_tokens else ids

    def encode(self, texts: Sequence[str], role: Role, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        return self.encode_with_tokens(texts, role, on_batch)[0]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

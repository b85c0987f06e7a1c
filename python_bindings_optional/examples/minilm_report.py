"""The accuracy and speed table of docs/minilm.md: all-MiniLM-L6-v2 on keel vs fp32 and vs ONNX
Runtime, over the 220 sentences of tests/data/minilm_pairs.tsv.

    python minilm_report.py [--onnx-dir DIR] [--threads 1] [--repeat 3] [--int4-sentences N]

Accuracy, per variant: cosine of each sentence's embedding to the fp32 numpy encoder's (mean and
minimum), the share of sentences whose top-1 nearest neighbour among the other 219 is the one
fp32 picks, and the share whose nearest neighbour is its pair (the retrieval task). The fp32
encoder itself is compared with the package's own output (tests/data/minilm_reference.npz).

Speed: the encoder's time per sentence (token ids in, embedding out; batch 1, sentences one after
another), keel and ONNX Runtime interleaved sentence by sentence in the same process so that both
see the same machine load, each with --threads threads. ONNX Runtime runs the fp32 ONNX export of
the same weights and its dynamic int8 quantization (DIR/minilm_fp32.onnx and minilm_int8.onnx,
written by minilm_reference.py --onnx-dir DIR).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import keel
from keel import minilm

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def nn_excluding_self(emb: np.ndarray) -> np.ndarray:
    sim = emb.astype(np.float64) @ emb.astype(np.float64).T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(axis=1)


class OrtEncoder:
    """An ONNX file of the encoder (last_hidden_state) plus mean pooling and normalisation."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def embed_ids(self, ids: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids[None], "attention_mask": np.ones_like(ids)[None],
                "token_type_ids": np.zeros_like(ids)[None]}
        (hidden,) = self.session.run(["last_hidden_state"], feed)
        return minilm.pool(hidden[0])


def accuracy_row(name, emb, fp32, count):
    cos = minilm.cosine_rows(emb, fp32[:count])
    agree = np.mean(nn_excluding_self(emb) == nn_excluding_self(fp32[:count]))
    pairs = np.mean(nn_excluding_self(emb) == (np.arange(count) ^ 1))
    return (f"| {name} | {count} | {cos.mean():.5f} | {cos.min():.5f} | {100 * agree:.1f}% | "
            f"{100 * pairs:.1f}% |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx-dir", type=Path, help="directory with minilm_fp32.onnx and minilm_int8.onnx")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="timing passes over all sentences")
    ap.add_argument("--sentences", type=int, default=0, help="use only the first N (quick check)")
    ap.add_argument("--int4-sentences", type=int, default=220,
                    help="sentences for the int4 rows")
    args = ap.parse_args()

    ref = np.load(DATA / "minilm_reference.npz")
    sentences = [str(s) for s in ref["sentences"]]
    n = min(args.sentences, len(sentences)) if args.sentences else len(sentences)
    sentences = sentences[:n]
    ref_emb = ref["embeddings"][:n]
    weights = minilm.load_weights()
    tok = minilm.Tokenizer()
    ids = [tok.encode(s) for s in sentences]
    keel.set_cpu_threads(args.threads)

    def embed(enc, count=n):
        return np.stack([enc.embed_ids(i) for i in ids[:count]])

    fp32 = embed(minilm.Fp32Encoder(weights))
    cos_ref = minilm.cosine_rows(fp32, ref_emb)
    print(f"keel {keel.__version__}, backends {[b['name'] for b in keel.backends()]}, "
          f"cpu threads {keel.cpu_threads()}; python {platform.python_version()}, "
          f"numpy {np.__version__}; {os.cpu_count()} CPUs; {n} sentences")
    print(f"reference: {ref['versions']}\n")
    print("| encoder | sentences | mean cosine | min cosine | top-1 NN same as fp32 | NN is its pair |")
    print("|---|---|---|---|---|---|")
    print(f"| fp32 numpy vs the package (sentence-transformers) | {n} | {cos_ref.mean():.7f} | "
          f"{cos_ref.min():.7f} | - | {100 * np.mean(nn_excluding_self(fp32) == (np.arange(n) ^ 1)):.1f}% |")

    variants = [
        ("keel int8, per-token activations, f32 attention",
         dict(weight_format="int8", activations="per_token"), n),
        ("keel int8, per-token activations, int8 K/V attention",
         dict(weight_format="int8", activations="per_token", attention="int8_kv"), n),
        ("keel int8, per-tensor u8 activations (ONNX Runtime's scheme)",
         dict(weight_format="int8", activations="per_tensor"), n),
        ("keel int4 (u4, groups of 32), f32 activations",
         dict(weight_format="int4", group_size=32), min(args.int4_sentences, n)),
        ("keel int4 (u4, groups of 32), dynamic int8 activations",
         dict(weight_format="int4", group_size=32, int4_activation="dynamic_s8"),
         min(args.int4_sentences, n)),
    ]
    encoders = {}
    for name, cfg, count in variants:
        enc = minilm.KeelEncoder(weights, **cfg)
        encoders[name] = enc
        print(accuracy_row(name, embed(enc, count), fp32, count), flush=True)

    ort_int8 = None
    if args.onnx_dir:
        ort_fp32 = OrtEncoder(args.onnx_dir / "minilm_fp32.onnx", args.threads)
        ort_int8 = OrtEncoder(args.onnx_dir / "minilm_int8.onnx", args.threads)
        e = embed(ort_fp32)
        cos = minilm.cosine_rows(e, ref_emb)
        print(f"| ONNX Runtime fp32 export vs the package | {n} | {cos.mean():.7f} | {cos.min():.7f} | - | - |")
        print(accuracy_row("ONNX Runtime int8 (quantize_dynamic, per-channel weights)",
                           embed(ort_int8), fp32, n))

    # ---- speed: interleaved, sentence by sentence -------------------------------------------
    timed = {"keel int8 (per-token)": encoders[variants[0][0]].embed_ids,
             "keel int8 (per-tensor)": encoders[variants[2][0]].embed_ids,
             "keel int4 (dynamic int8 activations)": encoders[variants[4][0]].embed_ids,
             "fp32 numpy": minilm.Fp32Encoder(weights).embed_ids}
    if ort_int8 is not None:
        timed["ONNX Runtime int8"] = ort_int8.embed_ids
        timed["ONNX Runtime fp32"] = ort_fp32.embed_ids
    times = {k: [] for k in timed}
    for _ in range(args.repeat):
        for i in ids:
            for k, f in timed.items():
                t0 = time.perf_counter()
                f(i)
                times[k].append(time.perf_counter() - t0)
    tokens = statistics.mean(len(i) for i in ids)
    print(f"\nTime per sentence ({n} sentences, {tokens:.1f} tokens on average, batch 1, "
          f"{args.threads} thread(s), {args.repeat} interleaved passes):\n")
    print("| encoder | median ms | mean ms | relative to ONNX Runtime int8 (median) |")
    print("|---|---|---|---|")
    base = statistics.median(times["ONNX Runtime int8"]) if "ONNX Runtime int8" in times else None
    for k, v in times.items():
        med = statistics.median(v)
        rel = f"{med / base:.2f}x" if base else "-"
        print(f"| {k} | {1e3 * med:.2f} | {1e3 * statistics.mean(v):.2f} | {rel} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

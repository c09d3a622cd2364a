#!/usr/bin/python3
"""gpt2_model.py: a random GPT-2-shaped model in Hugging Face layout, for benchmarks.

Writes OUTDIR/model.safetensors (F32, GPT2Model names: wte, wpe, h.N.ln_1, h.N.attn.c_attn
[C, 3C] Conv1D, ..., ln_f; tied head) and OUTDIR/config.json ("model_type": "gpt2"), the files
`pathens eval` reads through [model] path and the GPT-2 peer (bench/gpt2_peer.py) loads.
Weights are N(0, 0.02) (projections into the residual stream N(0, 0.02 / sqrt(2 L)), as GPT-2
initialises them), LayerNorm weights 1 and biases 0: random but well-conditioned, so the
logits are finite and the NLL is about ln V. A deterministic function of --seed.

    /usr/bin/python3 bench/gpt2_model.py OUTDIR [--vocab 50257] [--dim 768] [--layers 12]
        [--heads 12] [--ctx 1024] [--seed 1]

Defaults: GPT-2 small (124M parameters, 0.5 GB on disk). Only numpy is needed.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.dim % a.heads:
        sys.exit("gpt2_model: --dim must be a multiple of --heads")
    V, C, L, P = a.vocab, a.dim, a.layers, a.ctx
    rng = np.random.default_rng(a.seed)
    proj_std = 0.02 / np.sqrt(2 * L)

    def normal(shape, std=0.02):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)

    tensors = [("wte.weight", normal((V, C))), ("wpe.weight", normal((P, C), 0.01))]
    for l in range(L):
        p = "h.%d." % l
        tensors += [
            (p + "ln_1.weight", np.ones(C, np.float32)), (p + "ln_1.bias", np.zeros(C, np.float32)),
            (p + "attn.c_attn.weight", normal((C, 3 * C))), (p + "attn.c_attn.bias", np.zeros(3 * C, np.float32)),
            (p + "attn.c_proj.weight", normal((C, C), proj_std)), (p + "attn.c_proj.bias", np.zeros(C, np.float32)),
            (p + "ln_2.weight", np.ones(C, np.float32)), (p + "ln_2.bias", np.zeros(C, np.float32)),
            (p + "mlp.c_fc.weight", normal((C, 4 * C))), (p + "mlp.c_fc.bias", np.zeros(4 * C, np.float32)),
            (p + "mlp.c_proj.weight", normal((4 * C, C), proj_std)), (p + "mlp.c_proj.bias", np.zeros(C, np.float32)),
        ]
    tensors += [("ln_f.weight", np.ones(C, np.float32)), ("ln_f.bias", np.zeros(C, np.float32))]

    header, off = {}, 0
    for name, t in tensors:
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + t.nbytes]}
        off += t.nbytes
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)  # data starts 8-byte aligned: the floats are mmapped in place
    os.makedirs(a.outdir, exist_ok=True)
    with open(os.path.join(a.outdir, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for _, t in tensors:
            f.write(np.ascontiguousarray(t, dtype="<f4").tobytes())
    cfg = {"model_type": "gpt2", "architectures": ["GPT2Model"], "vocab_size": V, "n_positions": P, "n_embd": C,
           "n_layer": L, "n_head": a.heads, "n_inner": None, "activation_function": "gelu_new",
           "layer_norm_epsilon": 1e-5}
    with open(os.path.join(a.outdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    n_params = sum(t.size for _, t in tensors)
    print("gpt2_model: %s: %d parameters, %.1f MB" % (a.outdir, n_params, (off + len(hj) + 8) / 1e6))


if __name__ == "__main__":
    main()

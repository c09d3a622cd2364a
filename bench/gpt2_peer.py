#!/usr/bin/python3
"""gpt2_peer.py: the GPT-2 self-ensemble evaluation the way a researcher writes it in PyTorch.

The model of bench/gpt2_model.py (HF GPT-2 layout, F32 safetensors read with numpy, tied head), on
the windows `pathens eval` scores with [model] tokenizer = bytes and [data] mode = windows,
stride = context: the file's bytes, window w = bytes [w (T - 1), w (T - 1) + T) (consecutive
windows share one token), every prediction scored. Batched (all windows at once, as pathens' batch
of 8 holds them), dense plus K members whose attention is subsampled by the "unbiased" scheme
written as masked attention: per (member, layer, window, head) a uniformly random subset of
ceil(T / rho) key positions shared by all queries, then the causal mask, and every query keeps
its own position; -inf elsewhere, over the full (T, T) scores. Per token: log-softmax over the
vocabulary, the NLL of the dense model and of every member, KL(dense || member), argmax
agreement, and the NLL of the probability mixture: the numbers pathens' results.json holds.

    /usr/bin/python3 bench/gpt2_peer.py --model DIR --data FILE [--windows 4] [--members 2]
        [--ratio 4] [--seed 1234] [--threads 1] [--reps 1] [--ref-nll X]

tokens/s = scored tokens x (1 + K) / wall seconds of the evaluation (loading excluded), the
definition of pathens' timing.json. Prints PEER_* lines for bench/bench_gpt2.sh.
"""
import argparse
import json
import math
import os
import resource
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


def load_gpt2(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    path = os.path.join(d, "model.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    w = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        w[name] = torch.from_numpy(np.frombuffer(raw[a:b], dtype="<f4").reshape(t["shape"]).copy())
    return cfg, w


def forward(cfg, w, tok, mask_of_layer):
    """tok (B, T) long; mask_of_layer(l) -> (B, H, T, T) bool (True = attend) or None (causal).
    Returns logits (B, T, V)."""
    B, T = tok.shape
    C, H = cfg["n_embd"], cfg["n_head"]
    hs = C // H
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    x = w["wte.weight"][tok] + w["wpe.weight"][:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(cfg["n_layer"]):
        p = "h.%d." % l
        xn = F.layer_norm(x, (C,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = xn @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (t.view(B, T, H, hs).transpose(1, 2) for t in qkv.split(C, dim=-1))
        s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hs))
        m = mask_of_layer(l)
        s = s.masked_fill(~(causal if m is None else m), float("-inf"))
        a = torch.softmax(s, dim=-1) @ v
        x = x + a.transpose(1, 2).reshape(B, T, C) @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        xn = F.layer_norm(x, (C,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        h = F.gelu(xn @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"], approximate="tanh")
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (C,), w["ln_f.weight"], w["ln_f.bias"], eps)
    return x @ w["wte.weight"].T


def unbiased_mask(gen, B, H, T, ratio):
    """(B, H, T, T) bool: per (window, head) a uniform subset of ceil(T / ratio) key columns,
    shared by all queries, then causal, plus the diagonal."""
    r = torch.rand((B, H, T), generator=gen)
    k = max(1, math.ceil(T / ratio - 1e-9))
    kth = r.sort(dim=-1).values[..., k - 1:k]
    keep = r <= kth
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    return (keep[..., None, :] & causal) | torch.eye(T, dtype=torch.bool)


def evaluate(cfg, w, tok, args):
    B, T = tok.shape
    L, H, K = cfg["n_layer"], cfg["n_head"], args.members
    gen = torch.Generator().manual_seed(args.seed)
    tgt = tok[:, 1:]
    with torch.no_grad():
        lp_d = F.log_softmax(forward(cfg, w, tok, lambda l: None)[:, :-1], dim=-1)  # (B, T-1, V)
        am_d = lp_d.argmax(-1)
        p_d = lp_d.exp()
        dense = -lp_d.gather(-1, tgt[..., None]).double().sum().item()
        members, kls, agree, lpt = [], [], [], []
        for m in range(K):
            masks = [unbiased_mask(gen, B, H, T, args.ratio) for _ in range(L)]
            lp = F.log_softmax(forward(cfg, w, tok, lambda l: masks[l])[:, :-1], dim=-1)
            t = lp.gather(-1, tgt[..., None])[..., 0]
            lpt.append(t)
            members.append(-t.double().sum().item())
            kls.append((p_d * (lp_d - lp)).double().sum().item())
            agree.append(int((lp.argmax(-1) == am_d).sum()))
            del lp
        ens = -(torch.logsumexp(torch.stack(lpt), 0) - math.log(K)).double().sum().item() if K else float("nan")
    return B * (T - 1), dense, members, kls, agree, ens


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="folder of bench/gpt2_model.py")
    ap.add_argument("--data", required=True, help="text file (its bytes are the tokens)")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--ratio", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--ref-nll", type=float, default=None, help="pathens' dense NLL on the same windows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, w = load_gpt2(args.model)
    T = cfg["n_positions"]
    data = open(args.data, "rb").read()
    tok = torch.tensor([list(data[i * (T - 1):i * (T - 1) + T]) for i in range(args.windows)], dtype=torch.long)
    walls, cpus = [], []
    for _ in range(max(1, args.reps)):
        t0, c0 = time.perf_counter(), time.process_time()
        res = evaluate(cfg, w, tok, args)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    n_tok, dense, members, kls, agree, ens = res
    K = args.members
    wall, cpu = min(walls), min(cpus)
    print(f"gpt2_peer: PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.windows} windows of "
          f"{T}, {n_tok} scored tokens, K={K}, unbiased rho={args.ratio:g}")
    print("wall per repetition: " + ", ".join(f"{x:.2f} s" for x in walls) +
          "; cpu: " + ", ".join(f"{x:.2f} s" for x in cpus))
    print(f"dense NLL {dense / n_tok:.7f}" + (f" (pathens {args.ref_nll:.7f}, |difference| "
                                               f"{abs(dense / n_tok - args.ref_nll):.2e})" if args.ref_nll else ""))
    for m in range(K):
        print(f"member {m}: NLL {members[m] / n_tok:.7f}, KL {kls[m] / n_tok:.3e} nats/token, agreement "
              f"{agree[m] / n_tok:.4f}")
    if K:
        print(f"ensemble NLL (prob) {ens / n_tok:.7f}")
    print(f"PEER_TOKENS_PER_SECOND {n_tok * (1 + K) / wall:.3f}")
    print(f"PEER_TOKENS_PER_CPU_SECOND {n_tok * (1 + K) / cpu:.3f}")
    print(f"PEER_DENSE_NLL {dense / n_tok:.9f}")
    print(f"PEER_MAXRSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")


if __name__ == "__main__":
    main()

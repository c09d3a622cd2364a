#!/usr/bin/python3
"""ensemble_peer.py: the self-ensemble evaluation the way a researcher writes it today in PyTorch.

A Llama model from a llama2.c legacy (v0) checkpoint, batched over documents padded to the batch
maximum with a key-padding mask, evaluated dense plus K members whose attention is subsampled by
the "unbiased" scheme written as masked attention: per (member, layer, head, document) a uniformly
random subset of ceil(n / rho) key positions (n = the document's length), shared by all queries,
then the causal mask, and every query always keeps its own position; -inf outside. With
--scheme random-k (lambda = inf) each query i keeps its own uniform subset of ceil((i+1)/rho) - 1
of its earlier positions, plus its own. The full
(T, T) scores are computed and masked (that is what "masked attention" costs). Per-token NLL of
the dense model, of each member and of the probability-mixture ensemble.

Token ids come from a file with one document per line (bench/dump_tokens prints exactly the
documents `pathens eval` scores), so no tokenizer is needed here.

    /usr/bin/python3 bench/ensemble_peer.py --tokens TOKENS.txt [--model stories260K.bin]
        [--members 4] [--ratio 4] [--scheme unbiased|random-k] [--batch 16] [--seed 1234] [--reps 1] [--ref-nll X] [--threads 1]

tokens/s = scored tokens x (1 + K) / wall seconds of the evaluation (model loading and reading
the token file excluded), the same definition as pathens' timing.json; also per CPU second of
the process (time.process_time), like timing.json's eval_cpu_seconds.
"""
import argparse
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "data"))  # the checkout's data/ (tools/fetch-data.sh)


def load_llama2c_v0(path):
    """llama2.c legacy export: 7 int32 header, then float32 tensors; RoPE tables at the end are skipped."""
    with open(path, "rb") as f:
        dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("7i", f.read(28))
        shared = vocab > 0
        vocab = abs(vocab)
        raw = np.frombuffer(f.read(), dtype=np.float32)
    hs = dim // n_heads
    kvd = n_kv * hs
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        t = torch.from_numpy(raw[off:off + n].copy()).reshape(shape)
        off += n
        return t

    w = {}
    w["tok"] = take(vocab, dim)
    w["rms_att"] = take(n_layers, dim)
    w["wq"] = take(n_layers, dim, dim)
    w["wk"] = take(n_layers, kvd, dim)
    w["wv"] = take(n_layers, kvd, dim)
    w["wo"] = take(n_layers, dim, dim)
    w["rms_ffn"] = take(n_layers, dim)
    w["w1"] = take(n_layers, hidden, dim)
    w["w2"] = take(n_layers, dim, hidden)
    w["w3"] = take(n_layers, hidden, dim)
    w["rms_final"] = take(dim)
    off += seq_len * hs // 2 * 2  # freq_cis_real, freq_cis_imag (unused: RoPE is recomputed)
    if shared:
        w["cls"] = w["tok"]
    else:
        w["cls"] = take(vocab, dim)
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv, vocab=vocab,
               seq_len=seq_len, hs=hs)
    return cfg, w


def rmsnorm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(T, hs, theta=10000.0):
    # angle pos * theta^(-2i/hs) for the adjacent pair (x[2i], x[2i+1])
    inv = theta ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()  # (T, hs/2)


def apply_rope(x, cos, sin):
    # x (B, H, T, hs); rotate adjacent pairs
    x0, x1 = x[..., 0::2], x[..., 1::2]
    r0 = x0 * cos - x1 * sin
    r1 = x0 * sin + x1 * cos
    return torch.stack((r0, r1), dim=-1).flatten(-2)


def forward(cfg, w, tokens, allowed):
    """tokens (B, T) long; allowed: (L, B, H, T, T) bool attention masks (True = attend).
    Returns logits (B, T, V)."""
    B, T = tokens.shape
    H, KV, hs = cfg["n_heads"], cfg["n_kv"], cfg["hs"]
    group = H // KV
    cos, sin = rope_tables(T, hs)
    x = w["tok"][tokens]  # (B, T, C)
    scale = 1.0 / math.sqrt(hs)
    for l in range(cfg["n_layers"]):
        xn = rmsnorm(x, w["rms_att"][l])
        q = (xn @ w["wq"][l].T).view(B, T, H, hs).transpose(1, 2)
        k = (xn @ w["wk"][l].T).view(B, T, KV, hs).transpose(1, 2)
        v = (xn @ w["wv"][l].T).view(B, T, KV, hs).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k = k.repeat_interleave(group, dim=1)  # query head h reads kv head h // group
        v = v.repeat_interleave(group, dim=1)
        s = (q @ k.transpose(-1, -2)) * scale
        s = s.masked_fill(~allowed[l], float("-inf"))
        a = torch.softmax(s, dim=-1) @ v
        x = x + a.transpose(1, 2).reshape(B, T, -1) @ w["wo"][l].T
        xn = rmsnorm(x, w["rms_ffn"][l])
        x = x + (F.silu(xn @ w["w1"][l].T) * (xn @ w["w3"][l].T)) @ w["w2"][l].T
    x = rmsnorm(x, w["rms_final"])
    return x @ w["cls"].T


def unbiased_masks(gen, L, H, lens, T, ratio):
    """(L, B, H, T, T) bool: per (layer, doc, head) a uniform subset of ceil(n/ratio) keys out of
    the doc's n valid positions, shared by all queries, then causal, plus the diagonal."""
    B = len(lens)
    lens_t = torch.tensor(lens)
    valid = torch.arange(T)[None, :] < lens_t[:, None]  # (B, T)
    r = torch.rand((L, B, H, T), generator=gen)
    r = r.masked_fill(~valid[None, :, None, :], 2.0)  # padding never chosen
    k = torch.tensor([max(1, math.ceil(n / ratio - 1e-9)) for n in lens])  # (B)
    kth = r.sort(dim=-1).values.gather(-1, (k - 1).view(1, B, 1, 1).expand(L, B, H, 1))
    keep = r <= kth  # (L, B, H, T) chosen key columns
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    eye = torch.eye(T, dtype=torch.bool)
    return (keep[..., None, :] & causal) | eye


def random_k_masks(gen, L, H, lens, T, ratio):
    """(L, B, H, T, T) bool: per (layer, doc, head, query i) a uniform subset of
    ceil((i + 1) / ratio) - 1 of the keys j < i, plus the query's own position (pathens'
    causal random-k, lambda = inf): random scores over the causal prefix, ranked per row."""
    B = len(lens)
    causal_strict = torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1)  # j < i
    r = torch.rand((L, B, H, T, T), generator=gen)
    r = r.masked_fill(~causal_strict, 2.0)  # never chosen
    picks = torch.tensor([max(1, math.ceil((i + 1) / ratio - 1e-9)) - 1 for i in range(T)])  # (T)
    kmax = max(1, int(picks.max()))
    order = r.topk(kmax, dim=-1, largest=False).indices  # row i's kmax lowest scores (topk: cheaper than argsort, --check)
    first = (torch.arange(kmax)[None, :] < picks[:, None]).expand(L, B, H, T, kmax)  # rank < picks[i]
    keep = torch.zeros((L, B, H, T, T), dtype=torch.bool).scatter_(-1, order, first)
    return keep | torch.eye(T, dtype=torch.bool)


def check_random_k(ratio=4.0, T=40, draws=200):
    """--check: the law of random_k_masks (every row keeps ceil((i+1)/ratio) keys, none after i, its
    own always; row 20's earlier keys each kept ~ picks/20 of the time), then topk against a full
    argsort for the selection on one batch's shape (L 5, B 16, H 8, T 200). Exits 1 on a law failure."""
    gen = torch.Generator().manual_seed(1)
    m = random_k_masks(gen, 2, 3, [T, T - 10], T, ratio)
    for i in range(T):
        want = max(1, math.ceil((i + 1) / ratio - 1e-9))
        if not ((m[:, :, :, i, :].sum(-1) == want).all() and not m[:, :, :, i, i + 1:].any() and m[:, :, :, i, i].all()):
            print(f"FAIL: random-k row {i}: counts {m[:, :, :, i, :].sum(-1).unique().tolist()}, want {want}")
            sys.exit(1)
    acc = torch.zeros(T)
    for _ in range(draws):
        acc += random_k_masks(gen, 1, 4, [T] * 4, T, ratio)[:, :, :, 20, :].float().sum((0, 1, 2))
    freq = acc[:20] / (draws * 16)
    expect = (max(1, math.ceil(21 / ratio - 1e-9)) - 1) / 20
    print(f"random-k law: counts, causality and the diagonal ok for T = {T}; row 20's earlier keys kept "
          f"{freq.min().item():.3f}-{freq.max().item():.3f} of {draws * 16} draws (expected {expect:.3f})")
    L, B, H, Tb = 5, 16, 8, 200
    r = torch.rand((L, B, H, Tb, Tb), generator=gen)
    kmax = math.ceil(Tb / ratio)
    t0 = time.perf_counter(); r.argsort(dim=-1); t1 = time.perf_counter()
    r.topk(kmax, dim=-1, largest=False); t2 = time.perf_counter()
    print(f"selection on ({L}, {B}, {H}, {Tb}, {Tb}): argsort {t1 - t0:.3f} s, topk({kmax}) {t2 - t1:.3f} s")
    if (freq - expect).abs().max().item() > 0.05:
        print("FAIL: inclusion frequencies off by more than 0.05")
        sys.exit(1)


def evaluate(cfg, w, docs, args):
    """The timed part: dense + K members over every batch. Returns (tokens, sum NLL dense,
    [sum NLL member k], sum NLL ensemble)."""
    L, H, K = cfg["n_layers"], cfg["n_heads"], args.members
    gen = torch.Generator().manual_seed(args.seed)
    sum_dense, sum_ens, n_tok = 0.0, 0.0, 0
    sum_member = [0.0] * K
    with torch.no_grad():
        for b0 in range(0, len(docs), args.batch):
            batch = docs[b0:b0 + args.batch]
            lens = [len(d) for d in batch]
            T = max(lens)
            tok = torch.zeros((len(batch), T), dtype=torch.long)
            for i, d in enumerate(batch):
                tok[i, :len(d)] = torch.tensor(d)
            # targets: position p predicts p+1, scored for p < len-1
            tgt = torch.zeros_like(tok)
            tgt[:, :-1] = tok[:, 1:]
            scored = torch.arange(T)[None, :] < (torch.tensor(lens)[:, None] - 1)
            valid = torch.arange(T)[None, :] < torch.tensor(lens)[:, None]
            # dense: causal + key padding
            dense_mask = torch.tril(torch.ones(T, T, dtype=torch.bool))[None, None] & valid[:, None, None, :]
            dense_mask = dense_mask | torch.eye(T, dtype=torch.bool)  # padded queries keep a key (outputs unused)
            logp = F.log_softmax(forward(cfg, w, tok, dense_mask.expand(L, -1, H, -1, -1)), dim=-1)
            lp_dense = logp.gather(-1, tgt[..., None])[..., 0]
            sum_dense += -lp_dense[scored].double().sum().item()
            n_tok += int(scored.sum())
            lp_members = []
            for m in range(K):
                draw = random_k_masks if args.scheme == "random-k" else unbiased_masks
                masks = draw(gen, L, H, lens, T, args.ratio) & valid[None, :, None, None, :]
                masks = masks | torch.eye(T, dtype=torch.bool)
                logp = F.log_softmax(forward(cfg, w, tok, masks), dim=-1)
                lp = logp.gather(-1, tgt[..., None])[..., 0]
                sum_member[m] += -lp[scored].double().sum().item()
                lp_members.append(lp)
            if K:
                lp_ens = torch.logsumexp(torch.stack(lp_members), dim=0) - math.log(K)
                sum_ens += -lp_ens[scored].double().sum().item()
    return n_tok, sum_dense, sum_member, sum_ens


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(DATA, "stories260K.bin"))
    ap.add_argument("--tokens", help="one document per line, token ids (bench/dump_tokens)")
    ap.add_argument("--check", action="store_true", help="check random-k masks' law and time topk vs argsort, then exit")
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--ratio", type=float, default=4.0)
    ap.add_argument("--scheme", choices=["unbiased", "random-k"], default="unbiased")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=1, help="run the evaluation R times, report the fastest")
    ap.add_argument("--ref-nll", type=float, default=None, help="pathens' dense NLL on the same documents")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.check:
        check_random_k(args.ratio)
        return
    if not args.tokens:
        ap.error("--tokens is required (bench/dump_tokens writes it)")

    cfg, w = load_llama2c_v0(args.model)
    with open(args.tokens) as f:
        docs = [[int(t) for t in line.split()] for line in f if line.strip()]
    K = args.members
    walls, cpus = [], []
    for rep in range(max(1, args.reps)):
        t0, c0 = time.perf_counter(), time.process_time()
        res = evaluate(cfg, w, docs, args)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    wall, cpu = min(walls), min(cpus)
    n_tok, sum_dense, sum_member, sum_ens = res

    nll_dense = sum_dense / n_tok
    print(f"ensemble_peer: PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s), {len(docs)} documents, "
          f"{n_tok} scored tokens, K={K} members, {args.scheme} rho={args.ratio:g}, batch {args.batch}")
    print("wall per repetition: " + ", ".join(f"{x:.3f} s" for x in walls))
    print(f"dense NLL (PyTorch)  {nll_dense:.7f}")
    if args.ref_nll is not None:
        print(f"dense NLL (pathens)  {args.ref_nll:.7f}   |difference| {abs(nll_dense - args.ref_nll):.2e}")
    if K:
        print(f"member mean NLL      {sum(sum_member) / K / n_tok:.7f}")
        print(f"ensemble NLL (prob)  {sum_ens / n_tok:.7f}")
    tps = n_tok * (1 + K) / wall
    print(f"wall {wall:.3f} s (best of {len(walls)})   tokens/s {tps:.0f}   (scored tokens x (1 + K) / s)")
    print(f"PEER_TOKENS_PER_SECOND {tps:.3f}")
    print(f"PEER_TOKENS_PER_CPU_SECOND {n_tok * (1 + K) / cpu:.3f}")
    print(f"PEER_DENSE_NLL {nll_dense:.9f}")


if __name__ == "__main__":
    main()

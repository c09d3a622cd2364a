#!/usr/bin/python3
"""train_peer.py: the same training step in PyTorch (Debian's python3-torch, CPU, float32), the
peer baseline for `pathens train` (bench/bench_train.sh runs both on the same machine).

The architecture comes from a native pathens config.json (GPT-style LM or ViT, docs/training.md):
LayerNorm, learned positions, erf-GELU MLP, nn.MultiheadAttention-free plain attention written
as PyTorch users write it (scores = q k^T / sqrt(hs), masked_fill for the causal mask or the SSA
mask, softmax, @ v), tied LM head or CLS classifier; AdamW; clip_grad_norm_. SSA in PyTorch is a
dense (T, T) mask per (sequence, head) with the `unbiased` rule (a random subset of ceil(T / rho)
keys shared by the queries, each query also keeps itself): what masked attention costs.

    /usr/bin/python3 bench/train_peer.py --arch configs/arch/vit-fashion.json --batch 128 --steps 30
        [--ratio 4] [--threads 1] [--context 128]

Prints one line: examples/s (median over steps after 3 warm-up steps).
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--arch", required=True)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--steps", type=int, default=30)
p.add_argument("--ratio", type=float, default=1.0)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--context", type=int, default=0)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
c = json.load(open(a.arch))
C, L, NH, HID = c["dim"], c["n_layers"], c["n_heads"], c["hidden_dim"]
HS = C // NH
img = c["input"] == "patches"
if img:
    P = c["patch_size"]
    NP = (c["image_size"] // P) ** 2
    T = NP + (1 if c["head"] == "cls_token" else 0)
else:
    T = a.context or c["seq_len"]


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = torch.nn.LayerNorm(C), torch.nn.LayerNorm(C)
        self.q, self.k, self.v, self.o = (torch.nn.Linear(C, C) for _ in range(4))
        self.w1, self.w2 = torch.nn.Linear(C, HID), torch.nn.Linear(HID, C)

    def forward(self, x, mask):
        B = x.shape[0]
        h = self.n1(x)
        q = self.q(h).view(B, T, NH, HS).transpose(1, 2)
        k = self.k(h).view(B, T, NH, HS).transpose(1, 2)
        v = self.v(h).view(B, T, NH, HS).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(HS)
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        y = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.o(y)
        return x + self.w2(F.gelu(self.w1(self.n2(x))))


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        if img:
            self.patch = torch.nn.Linear(P * P, C)
            self.cls = torch.nn.Parameter(torch.zeros(1, 1, C))
            self.head = torch.nn.Linear(C, c["n_classes"])
        else:
            self.tok = torch.nn.Embedding(c["vocab_size"], C)
        self.pos = torch.nn.Parameter(torch.zeros(1, T, C))
        self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
        self.nf = torch.nn.LayerNorm(C)

    def forward(self, x, mask):
        if img:
            B = x.shape[0]
            x = torch.cat([self.cls.expand(B, 1, C), self.patch(x)], 1) + self.pos
        else:
            x = self.tok(x) + self.pos
        for b in self.blocks:
            x = b(x, mask)
        x = self.nf(x)
        return self.head(x[:, 0]) if img else x @ self.tok.weight.t()


net = Net()
opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
times = []
for step in range(a.steps + 3):
    if img:
        x = torch.rand(a.batch, NP, P * P)
        y = torch.randint(0, c["n_classes"], (a.batch,))
    else:
        seq = torch.randint(0, c["vocab_size"], (a.batch, T + 1))
        x, y = seq[:, :-1], seq[:, 1:]
    t0 = time.perf_counter()
    mask = None if img else causal
    if a.ratio > 1:  # unbiased SSA as a dense mask per (sequence, head), shared over the layers here
        keep = max(1, math.ceil(T / a.ratio))
        idx = torch.rand(a.batch, NH, T).argsort(-1)[..., :keep]
        m = torch.zeros(a.batch, NH, T, T, dtype=torch.bool)
        m.scatter_(-1, idx.unsqueeze(2).expand(a.batch, NH, T, keep), True)
        m |= torch.eye(T, dtype=torch.bool)
        mask = m if img else (m & causal)
    out = net(x, mask)
    loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    times.append(time.perf_counter() - t0)
med = statistics.median(times[3:])
print(f"torch {torch.__version__} threads {a.threads} T {T} batch {a.batch} ratio {a.ratio:g}: "
      f"{a.batch / med:.1f} examples/s ({a.batch * T / med:.0f} positions/s)")

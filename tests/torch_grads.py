#!/usr/bin/python3
"""torch_grads.py: check the C training gradients (pathens_gradtool) against PyTorch autograd.

    /usr/bin/python3 torch_grads.py [--perturb NAME INDEX DELTA] [--no-masks] [--tol T] DIR [DIR ...]

Each DIR holds what pathens_gradtool wrote: config.json, model.safetensors, batch.safetensors,
grads.safetensors (C gradients of the mean loss, plus "loss") and, for SSA, masks.safetensors.
The model is rebuilt from config.json in float64 (from the float32 weights) with the semantics of
src/model.c; the mean cross-entropy is differentiated by autograd and every parameter's gradient is
compared with the C one.

Pass (per DIR): the same tensor names and shapes on both sides, every C value finite,
    max|g_c - g_t| <= tol * max(1, max|g_t|)     for every tensor (tol default 1e-4),
    max|g_c - g_t| <= tol * max|g_t| + 1e-6      (a relative floor: small gradients must match too),
    |loss_c - loss_t| <= 1e-5 * |loss_t|.
--perturb NAME INDEX DELTA adds DELTA to element INDEX (flat) of the C gradient NAME before the
comparison (negative control: the check must then fail). --no-masks ignores masks.safetensors
(negative control: SSA gradients must differ from dense ones).
Exit 0: every DIR passes; 1: a mismatch (named on stdout); 2: bad usage or unreadable input.
PyTorch is only the oracle; nothing beyond torch (and the standard library) is used.
"""
import json
import math
import os
import struct
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the shell test turns this into a FAIL, never a skip
    print(f"FAIL: PyTorch is not importable by {sys.executable}: {e}")
    sys.exit(2)

torch.set_num_threads(1)
DT = torch.float64


class InputError(Exception):
    pass


def read_safetensors(path):
    """{name: float32 tensor} from a safetensors file (F32 only), parsed by hand."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError as e:
        raise InputError(f"{path}: {e}")
    if len(buf) < 8:
        raise InputError(f"{path}: shorter than the 8-byte header length")
    (hlen,) = struct.unpack("<Q", buf[:8])
    if 8 + hlen > len(buf):
        raise InputError(f"{path}: header length {hlen} runs past the end of the file")
    header = json.loads(buf[8:8 + hlen].decode("utf-8"))
    data = bytearray(buf[8 + hlen:])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] != "F32":
            raise InputError(f"{path}: tensor {name} has dtype {meta['dtype']}, expected F32")
        a, b = meta["data_offsets"]
        shape = [int(s) for s in meta["shape"]]
        n = math.prod(shape)
        if b - a != 4 * n or b > len(data):
            raise InputError(f"{path}: tensor {name}: data_offsets {a}..{b} do not fit shape {shape}")
        t = torch.frombuffer(data, dtype=torch.float32, count=n, offset=a) if n else torch.zeros(0)
        out[name] = t.clone().reshape(shape)
    return out


def forward_loss(cfg, P, batch, masks):
    """Mean cross-entropy of the batch; P: {name: float64 leaf tensor}."""
    C, L, NH = cfg["dim"], cfg["n_layers"], cfg["n_heads"]
    HS = C // NH
    eps = float(cfg["norm_eps"])
    causal = bool(cfg["causal"])
    if cfg["norm"] != "layernorm" or cfg["pos"] != "learned" or cfg["mlp"] != "gelu" or not cfg["bias"]:
        raise InputError(f"config switches not covered by this oracle: {cfg}")
    if cfg["n_kv_heads"] != NH:
        raise InputError("grouped-query attention is not covered by this oracle")

    if cfg["input"] == "tokens":
        tok = batch["tokens"].to(torch.int64)
        B, T = tok.shape[0], tok.shape[1] - 1
        inp, tgt = tok[:, :T], tok[:, 1:]
        x = P["tok_emb.weight"][inp] + P["pos_emb.weight"][:T]
    else:
        pix = batch["pixels"].to(DT)  # (B, CH, S, S), values 0..255
        labels = batch["labels"].to(torch.int64)
        B, CH, S, _ = pix.shape
        Pz = cfg["patch_size"]
        per = S // Pz
        # patches (B, NP, CH*P*P): row-major patch order, (channel, row, col) inside a patch
        pt = pix.reshape(B, CH, per, Pz, per, Pz).permute(0, 2, 4, 1, 3, 5).reshape(B, per * per, CH * Pz * Pz)
        pt = (pt / 255.0 - float(cfg["pixel_mean"])) / float(cfg["pixel_std"])
        x = pt @ P["patch_emb.weight"].T + P["patch_emb.bias"]
        if cfg["head"] == "cls_token":
            x = torch.cat([P["cls_token"].reshape(1, 1, C).expand(B, 1, C), x], dim=1)
        T = x.shape[1]
        x = x + P["pos_emb.weight"][:T]

    if causal:
        allowed = torch.tril(torch.ones(T, T, dtype=torch.bool))
    else:
        allowed = torch.ones(T, T, dtype=torch.bool)

    def lin(h, name):
        return h @ P[name + ".weight"].T + P[name + ".bias"]

    def ln(h, name):
        return F.layer_norm(h, (C,), P[name + ".weight"], P[name + ".bias"], eps)

    for l in range(L):
        pre = f"layers.{l}."
        h = ln(x, pre + "attn_norm")
        q = lin(h, pre + "attn.wq").reshape(B, T, NH, HS).transpose(1, 2)  # (B, NH, T, HS)
        k = lin(h, pre + "attn.wk").reshape(B, T, NH, HS).transpose(1, 2)
        v = lin(h, pre + "attn.wv").reshape(B, T, NH, HS).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(HS)  # (B, NH, T, T)
        m = allowed.expand(B, NH, T, T)
        if masks is not None:
            mk = masks[f"mask.{l}"]
            if tuple(mk.shape) != (B, NH, T, T):
                raise InputError(f"mask.{l} has shape {list(mk.shape)}, expected {[B, NH, T, T]}")
            mk = mk != 0
            if (mk & ~m).any():
                raise InputError(f"mask.{l} keeps a connection the causal rule forbids")
            m = m & mk
        rowany = m.any(dim=-1, keepdim=True)
        p = torch.softmax(s.masked_fill(~m, -1e300), dim=-1) * rowany  # a row with no key outputs 0
        att = (p @ v).transpose(1, 2).reshape(B, T, C)
        x = x + lin(att, pre + "attn.wo")
        h = ln(x, pre + "mlp_norm")
        h = F.gelu(lin(h, pre + "mlp.w1"))  # exact (erf) GELU
        x = x + lin(h, pre + "mlp.w2")
    xf = ln(x, "final_norm")

    if cfg["input"] == "tokens":
        W = P["tok_emb.weight"] if cfg["head"] == "lm_tied" else P["lm_head.weight"]
        logits = xf @ W.T  # (B, T, V)
        return F.cross_entropy(logits.reshape(B * T, -1), tgt.reshape(B * T), reduction="mean")
    pooled = xf[:, 0] if cfg["head"] == "cls_token" else xf.mean(dim=1)
    logits = pooled @ P["cls_head.weight"].T + P["cls_head.bias"]
    return F.cross_entropy(logits, labels, reduction="mean")


def check_dir(d, perturb, use_masks, tol):
    """Returns a list of failure messages (empty = pass); prints the per-tensor table."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    model = read_safetensors(os.path.join(d, "model.safetensors"))
    batch = read_safetensors(os.path.join(d, "batch.safetensors"))
    gc = read_safetensors(os.path.join(d, "grads.safetensors"))
    mpath = os.path.join(d, "masks.safetensors")
    masks = read_safetensors(mpath) if use_masks and os.path.exists(mpath) else None

    P = {n: t.to(DT).requires_grad_(True) for n, t in model.items()}
    loss = forward_loss(cfg, P, batch, masks)
    loss.backward()

    fails = []
    if perturb:
        name, idx, delta = perturb
        if name not in gc:
            raise InputError(f"--perturb: no gradient tensor {name}")
        gc[name].view(-1)[idx] += delta
        print(f"  (negative control: C gradient {name}[{idx}] += {delta:g})")
    for name in model:
        if name not in gc:
            fails.append(f"{name}: no C gradient in grads.safetensors")
    for name in gc:
        if name != "loss" and name not in model:
            fails.append(f"{name}: C gradient for a tensor the model does not have")
    if "loss" not in gc:
        fails.append("loss: missing from grads.safetensors")
    else:
        lc, lt = float(gc["loss"].reshape(-1)[0]), float(loss)
        rel = abs(lc - lt) / max(abs(lt), 1e-30)
        ok = rel <= 1e-5
        print(f"  loss: C {lc:.9g}  torch {lt:.9g}  rel diff {rel:.2e}  {'ok' if ok else 'MISMATCH'}")
        if not ok:
            fails.append(f"loss: C {lc!r} vs torch {lt!r} (rel diff {rel:.3e} > 1e-5)")

    worst = (0.0, "")
    for name, t in model.items():
        if name not in gc:
            continue
        g_t = P[name].grad
        g_t = torch.zeros_like(P[name]) if g_t is None else g_t.detach()
        g_c = gc[name].to(DT)
        if tuple(g_c.shape) != tuple(g_t.shape):
            fails.append(f"{name}: C gradient shape {list(g_c.shape)}, model shape {list(g_t.shape)}")
            continue
        if not torch.isfinite(g_c).all():
            fails.append(f"{name}: C gradient has non-finite values")
            continue
        diff = (g_c - g_t).abs().max().item() if g_t.numel() else 0.0
        gmax = g_t.abs().max().item() if g_t.numel() else 0.0
        # a gradient that is 0 in exact arithmetic (attn.wk.bias: softmax ignores a per-query
        # constant; unused position rows) comes out as rounding noise: no relative figure for it
        exact0 = gmax <= 1e-12
        rel = 0.0 if exact0 else diff / gmax
        lim1 = tol * max(1.0, gmax)
        lim2 = tol * gmax + 1e-6
        ok = diff <= lim1 and diff <= lim2
        rs = "   (g = 0)" if exact0 else f"{rel:9.2e}"
        print(f"  {name:28s} max|g_t| {gmax:10.3e}  max|diff| {diff:9.2e}  rel {rs}  {'ok' if ok else 'MISMATCH'}")
        if rel > worst[0]:
            worst = (rel, name)
        if not ok:
            fails.append(f"{name}: max|g_c - g_t| = {diff:.3e} > limit {min(lim1, lim2):.3e} (max|g_t| = {gmax:.3e})")
    print(f"  worst relative diff {worst[0]:.2e} ({worst[1] or '-'})")
    return fails


def main(argv):
    perturb, use_masks, tol, dirs = None, True, 1e-4, []
    i = 0
    try:
        while i < len(argv):
            a = argv[i]
            if a == "--perturb":
                perturb = (argv[i + 1], int(argv[i + 2]), float(argv[i + 3]))
                i += 4
            elif a == "--no-masks":
                use_masks, i = False, i + 1
            elif a == "--tol":
                tol, i = float(argv[i + 1]), i + 2
            elif a.startswith("-"):
                raise ValueError(f"unknown option {a}")
            else:
                dirs.append(a)
                i += 1
    except (IndexError, ValueError) as e:
        print(f"usage: torch_grads.py [--perturb NAME INDEX DELTA] [--no-masks] [--tol T] DIR [DIR ...] ({e})")
        return 2
    if not dirs:
        print("usage: torch_grads.py [--perturb NAME INDEX DELTA] [--no-masks] [--tol T] DIR [DIR ...]")
        return 2
    print(f"torch {torch.__version__}, float64 oracle, tol {tol:g}")
    bad = 0
    for d in dirs:
        print(f"{d}:")
        try:
            fails = check_dir(d, perturb, use_masks, tol)
        except (InputError, OSError, KeyError, json.JSONDecodeError) as e:
            print(f"FAIL {d}: cannot check: {type(e).__name__}: {e}")
            return 2
        if fails:
            bad += 1
            for m in fails:
                print(f"FAIL {d}: {m}")
        else:
            print(f"PASS {d}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""oracle.py: recompute what `pathens eval` reports, independently, and compare.

    /usr/bin/python3 oracle.py lm  --model BIN --tokenizer TOK --text FILE [--tol T] RUN_DIR [RUN_DIR ...]
    /usr/bin/python3 oracle.py vit --model DIR --images IDX.gz [--tol T] RUN_DIR [RUN_DIR ...]
    /usr/bin/python3 oracle.py golden GOLDEN.txt RUN_DIR [RUN_DIR ...]
    /usr/bin/python3 oracle.py text GOLDEN.txt OUT.txt

Nothing of pathens is reused: the model files, the tokenizer, the text and the IDX images are read
here from their format specs (docs/formats.md), the forward passes are
written in PyTorch (float64 from the float32 weights), the pathway masks are drawn by a Python
copy of the counter-based sampler of docs/pathways.md (schemes dense, unbiased, window; head
granularity), and every metric of docs/metrics.md is recomputed from the per-token (per-image)
log-probabilities of the dense model and of each member. The config of each run is taken from its
own results.json (data.limit, pathways.*), so one recomputation checks several runs (serial,
mpirun with 1 and 3 ranks, the MPI-less build) of the same config.

Checked against every RUN_DIR (results.json, per_example.msgpack when present):
  lm:  per document: tokens, bytes, dense NLL, each member's NLL, the ensemble NLL (per_example);
       dense / every member / member_mean / every curve point / ensemble: nll_per_token, its
       stderr (documents as units), tokens, bytes, units; kl_from_dense, top1_agreement,
       kept_fraction, mean_kept_keys, mean_allowed_keys of every member (kept connections exactly);
       ensemble.minus_dense mean and stderr (the paired difference ensemble - dense, with its sign).
  vit: per image: label, dense / member / ensemble NLL (per_example); dense, members, curve and
       ensemble: accuracy (+ stderr), nll (+ stderr), ece (15 bins), examples; KL, agreement,
       kept_fraction; nll_minus_dense and accuracy_minus_dense (mean, stderr).
  golden: a dense run on the text of golden/stories260K_lily.txt: tokens and nll_per_token equal
       llama2.c's reference (the file's mean NLL line).
  text: writes the golden file's text (its "# text:" line) as a one-document text file.
Exit 0: every check passes; 1: a mismatch (each named on stdout); 2: bad usage or unreadable input.
"""
import gzip
import json
import math
import os
import struct
import sys

try:
    import torch
except ImportError as e:  # the shell test turns this into a FAIL, never a skip
    print(f"FAIL: PyTorch is not importable by {sys.executable}: {e}")
    sys.exit(2)

torch.set_num_threads(1)
DT = torch.float64
M64 = (1 << 64) - 1
fails = []


def check(cond, what):
    if not cond:
        fails.append(what)
    return cond


def close(a, b, tol, what):
    ok = a is not None and b is not None and math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tol
    return check(ok, f"{what}: pathens {a!r}, oracle {b!r} (tolerance {tol:g})")


# ---- msgpack (the subset per_example.msgpack uses), parsed by hand --------------------------------

def msgpack_load(buf):
    def at(p):
        t = buf[p]
        if t <= 0x7f: return t, p + 1
        if 0x80 <= t <= 0x8f: return mapn(t & 15, p + 1)
        if 0x90 <= t <= 0x9f: return arrn(t & 15, p + 1)
        if 0xa0 <= t <= 0xbf: n = t & 31; return buf[p + 1:p + 1 + n].decode(), p + 1 + n
        if t >= 0xe0: return t - 256, p + 1
        if t == 0xc0: return None, p + 1
        if t == 0xc2: return False, p + 1
        if t == 0xc3: return True, p + 1
        if t == 0xcb: return struct.unpack(">d", buf[p + 1:p + 9])[0], p + 9
        if t == 0xca: return struct.unpack(">f", buf[p + 1:p + 5])[0], p + 5
        ints = {0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q", 0xd0: ">b", 0xd1: ">h", 0xd2: ">i", 0xd3: ">q"}
        if t in ints:
            f = ints[t]; s = struct.calcsize(f)
            return struct.unpack(f, buf[p + 1:p + 1 + s])[0], p + 1 + s
        lens = {0xd9: ">B", 0xda: ">H", 0xdb: ">I", 0xc4: ">B", 0xc5: ">H", 0xc6: ">I"}
        if t in lens:
            f = lens[t]; s = struct.calcsize(f); n = struct.unpack(f, buf[p + 1:p + 1 + s])[0]
            body = buf[p + 1 + s:p + 1 + s + n]
            return (body.decode() if t in (0xd9, 0xda, 0xdb) else body), p + 1 + s + n
        if t in (0xdc, 0xdd):
            f = ">H" if t == 0xdc else ">I"; s = struct.calcsize(f)
            return arrn(struct.unpack(f, buf[p + 1:p + 1 + s])[0], p + 1 + s)
        if t in (0xde, 0xdf):
            f = ">H" if t == 0xde else ">I"; s = struct.calcsize(f)
            return mapn(struct.unpack(f, buf[p + 1:p + 1 + s])[0], p + 1 + s)
        raise ValueError(f"msgpack type byte 0x{t:02x} at {p} not handled")

    def arrn(n, p):
        out = []
        for _ in range(n):
            v, p = at(p); out.append(v)
        return out, p

    def mapn(n, p):
        out = {}
        for _ in range(n):
            k, p = at(p); v, p = at(p); out[k] = v
        return out, p

    v, p = at(0)
    if p != len(buf):
        raise ValueError(f"{len(buf) - p} trailing bytes")
    return v


# ---- the counter-based sampler of docs/pathways.md ------------------------------------------------

SLOT_MUL = (0xd6e8feb86659fd93, 0xa0761d6478bd642f, 0xe7037ed1a0b428db,
            0x8ebc6af09c88c6e3, 0x589965cc75374cc3, 0x1d8e4e27c47d124f)
SLOT_ADD = (0x2545f4914f6cdd1d, 0x9fb21c651e98df25, 0xc2b2ae3d27d4eb4f,
            0x165667b19e3779f9, 0x27d4eb2f165667c5, 0xff51afd7ed558ccd)
SCHEMES = {"dense": 0, "unbiased": 1, "local": 2, "random-k": 3, "window": 4, "head-drop": 5}


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


class Stream:
    def __init__(self, seed, member, layer, head, seq_id, scheme):
        h = 0x6a09e667f3bcc909
        for t, x in enumerate((seed, member, layer, head, seq_id, (0x5057 << 48) + SCHEMES[scheme])):
            h = mix64(h ^ mix64(((x & M64) * SLOT_MUL[t] + SLOT_ADD[t]) & M64))
        self.key, self.c = h, 0

    def u64(self):
        self.c += 1
        return mix64((self.key + self.c * 0x9e3779b97f4a7c15) & M64)

    def below(self, m):  # Lemire's multiply-shift with rejection
        x = (self.u64() >> 32) * m
        if (x & 0xffffffff) < m:
            thresh = ((1 << 32) - m) % m
            while (x & 0xffffffff) < thresh:
                x = (self.u64() >> 32) * m
        return x >> 32


def keys_for(nv, ratio):
    if nv <= 0: return 0
    return min(max(math.ceil(nv / ratio - 1e-9), 1), nv)


def draw_mask(pw, member, layer, head, seq_id, n, causal):
    """(n, n) bool: query i attends to key j, after the causal rule (self key always kept)."""
    scheme, ratio = pw["scheme"], float(pw["ratio"])
    allowed = torch.tril(torch.ones(n, n, dtype=torch.bool)) if causal else torch.ones(n, n, dtype=torch.bool)
    if scheme == "dense" or (scheme == "window" and ratio <= 1.0):
        return allowed
    m = torch.zeros(n, n, dtype=torch.bool)
    if scheme == "unbiased":
        r = Stream(int(pw["seed"]), member, layer, head, seq_id, scheme)
        k = keys_for(n, ratio)
        p = list(range(n))
        for a in range(min(k, n - 1)):
            b = a + r.below(n - a)
            p[a], p[b] = p[b], p[a]
        m[:, sorted(p[:k])] = True
    elif scheme == "window":
        kb = keys_for(n, ratio)
        for i in range(n):
            k = keys_for(i + 1, ratio) if causal else kb
            st = i - k + 1 if causal else i - k // 2
            st = min(max(st, 0), n - k)
            m[i, st:st + k] = True
    else:
        raise ValueError(f"scheme {scheme} is not covered by this oracle")
    if causal:
        m = (m & allowed) | torch.eye(n, dtype=torch.bool)
    return m


# ---- readers ---------------------------------------------------------------------------------------

def read_llama2c_v0(path):
    with open(path, "rb") as f:
        buf = f.read()
    dim, hid, L, NH, NKV, V, S = struct.unpack("<7i", buf[:28])
    shared = V > 0
    V = abs(V)
    HS = dim // NH
    kv = NKV * HS
    a = torch.frombuffer(bytearray(buf[28:]), dtype=torch.float32).to(DT)
    off = 0

    def take(*shape):
        nonlocal off
        n = math.prod(shape)
        t = a[off:off + n].reshape(shape)
        off += n
        return t
    w = {"emb": take(V, dim), "rms_att": take(L, dim), "wq": take(L, dim, dim), "wk": take(L, kv, dim),
         "wv": take(L, kv, dim), "wo": take(L, dim, dim), "rms_ffn": take(L, dim), "w1": take(L, hid, dim),
         "w2": take(L, dim, hid), "w3": take(L, hid, dim), "rms_final": take(dim)}
    take(S * HS // 2)
    take(S * HS // 2)
    w["cls"] = w["emb"] if shared else take(V, dim)
    cfg = dict(dim=dim, hidden=hid, L=L, NH=NH, NKV=NKV, V=V, seq_len=S)
    return cfg, w


def read_tokenizer(path, V):
    with open(path, "rb") as f:
        buf = f.read()
    p = 4
    pieces, scores = [], []
    for _ in range(V):
        s, n = struct.unpack("<fi", buf[p:p + 8])
        pieces.append(buf[p + 8:p + 8 + n])
        scores.append(s)
        p += 8 + n
    return pieces, scores


def encode(text, pieces, scores, index):
    """llama2.c encode: BOS, dummy " " prefix, code points (byte fallback id = byte + 3), best merges."""
    toks = [1]
    if text:
        toks.append(index[b" "])
    raw = text.encode("utf-8")
    i = 0
    while i < len(raw):
        j = i + 1
        while j < len(raw) and (raw[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        cp = raw[i:j]
        if cp in index:
            toks.append(index[cp])
        else:
            toks.extend(b + 3 for b in cp)
        i = j
    while True:
        best, bi, bid = -1e10, -1, -1
        for k in range(len(toks) - 1):
            tid = index.get(pieces[toks[k]] + pieces[toks[k + 1]])
            if tid is not None and scores[tid] > best:
                best, bi, bid = scores[tid], k, tid
        if bi < 0:
            break
        toks[bi:bi + 2] = [bid]
    return toks


def piece_bytes(prev, tok, pieces):
    """UTF-8 bytes a token adds after its predecessor (llama2.c decode rules)."""
    pc = pieces[tok]
    if prev == 1 and pc.startswith(b" "):
        pc = pc[1:]
    if len(pc) == 6 and pc.startswith(b"<0x") and pc.endswith(b">"):
        return 1
    return len(pc)


def documents(path, limit):
    """(doc_id, text) of blank-line separated paragraphs (docs/formats.md), the first `limit`."""
    with open(path, "rb") as f:
        data = f.read()
    docs, cur = [], []
    for line in data.split(b"\n"):
        if line.strip(b" \t\r\v\f") == b"":
            if cur: docs.append(b"\n".join(cur)); cur = []
        else:
            cur.append(line)
    if cur: docs.append(b"\n".join(cur))
    docs = [d[:-1] if d.endswith(b"\r") else d for d in docs]
    if limit > 0: docs = docs[:limit]
    return list(enumerate(d.decode("utf-8") for d in docs))


# ---- forward passes ----------------------------------------------------------------------------------

def rms(x, w, eps=1e-5):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def attention(q, k, v, NH, NKV, masks):
    """q (..., n, NH*HS), k/v (..., n, NKV*HS), masks: NH bool masks (..., n, n)."""
    HS = q.shape[-1] // NH
    outs = []
    for h in range(NH):
        g = h // (NH // NKV)
        qh, kh, vh = q[..., h * HS:(h + 1) * HS], k[..., g * HS:(g + 1) * HS], v[..., g * HS:(g + 1) * HS]
        s = (qh @ kh.transpose(-1, -2)) / math.sqrt(HS)
        s = s.masked_fill(~masks[h], float("-inf"))
        outs.append(torch.softmax(s, -1) @ vh)
    return torch.cat(outs, -1)


def llama_logits(cfg, w, toks, masks):
    """masks[l][h] (n, n) bool; returns (n, V) float64 logits."""
    n, dim, NH, NKV = len(toks), cfg["dim"], cfg["NH"], cfg["NKV"]
    HS = dim // NH
    x = w["emb"][torch.tensor(toks)]
    pos = torch.arange(n, dtype=DT)[:, None]
    freq = 10000.0 ** (-torch.arange(0, HS, 2, dtype=DT) / HS)
    ang = pos * freq[None, :]
    cos, sin = torch.cos(ang), torch.sin(ang)

    def rope(t, heads):
        t = t.reshape(n, heads, HS // 2, 2)
        a, b = t[..., 0], t[..., 1]
        c, s = cos[:, None, :], sin[:, None, :]
        return torch.stack((a * c - b * s, a * s + b * c), -1).reshape(n, heads * HS)
    for l in range(cfg["L"]):
        h = rms(x, w["rms_att"][l])
        q, k, v = h @ w["wq"][l].T, h @ w["wk"][l].T, h @ w["wv"][l].T
        x = x + attention(rope(q, NH), rope(k, NKV), v, NH, NKV, masks[l]) @ w["wo"][l].T
        h = rms(x, w["rms_ffn"][l])
        a = h @ w["w1"][l].T
        x = x + ((a * torch.sigmoid(a)) * (h @ w["w3"][l].T)) @ w["w2"][l].T
    return rms(x, w["rms_final"]) @ w["cls"].T


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (hl,) = struct.unpack("<Q", buf[:8])
    head = json.loads(buf[8:8 + hl])
    data = bytearray(buf[8 + hl:])
    out = {}
    for name, meta in head.items():
        if name == "__metadata__": continue
        if meta["dtype"] != "F32": raise ValueError(f"{path}: {name} is {meta['dtype']}, expected F32")
        a, b = meta["data_offsets"]
        out[name] = torch.frombuffer(data, dtype=torch.float32, count=(b - a) // 4, offset=a).to(DT).reshape(meta["shape"])
    return out


def read_idx_images(path, limit):
    with gzip.open(path, "rb") as f:
        buf = f.read()
    magic, n, r, c = struct.unpack(">4i", buf[:16])
    if magic != 2051: raise ValueError(f"{path}: not an idx3 images file")
    n = min(n, limit) if limit > 0 else n
    px = torch.frombuffer(bytearray(buf[16:16 + n * r * c]), dtype=torch.uint8).reshape(n, r, c)
    lpath = path.replace("images-idx3", "labels-idx1")
    with gzip.open(lpath, "rb") as f:
        lb = f.read()
    if struct.unpack(">i", lb[:4])[0] != 2049: raise ValueError(f"{lpath}: not an idx1 labels file")
    labels = torch.frombuffer(bytearray(lb[8:8 + n]), dtype=torch.uint8).long()
    return px, labels


def layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def vit_logits(cfg, W, img, masks):
    """images (B, H, W) uint8 -> (B, NC) float64 logits; masks[l][h] bool (B, n, n) or (n, n)."""
    P, C, NH = cfg["patch_size"], cfg["dim"], cfg["n_heads"]
    eps = cfg["norm_eps"]
    mean = struct.unpack("f", struct.pack("f", cfg["pixel_mean"]))[0]
    std = struct.unpack("f", struct.pack("f", cfg["pixel_std"]))[0]
    x = (img.to(DT) / 255.0 - mean) / std
    B, g = x.shape[0], x.shape[1] // P
    patches = x.reshape(B, g, P, g, P).permute(0, 1, 3, 2, 4).reshape(B, g * g, P * P)
    t = patches @ W["patch_emb.weight"].T + W["patch_emb.bias"]
    t = torch.cat((W["cls_token"].reshape(1, 1, C).expand(B, 1, C), t), 1)
    t = t + W["pos_emb.weight"][:t.shape[1]]
    for l in range(cfg["n_layers"]):
        p = f"layers.{l}."
        h = layernorm(t, W[p + "attn_norm.weight"], W[p + "attn_norm.bias"], eps)
        q = h @ W[p + "attn.wq.weight"].T + W[p + "attn.wq.bias"]
        k = h @ W[p + "attn.wk.weight"].T + W[p + "attn.wk.bias"]
        v = h @ W[p + "attn.wv.weight"].T + W[p + "attn.wv.bias"]
        a = attention(q, k, v, NH, cfg.get("n_kv_heads", NH), masks[l])
        t = t + a @ W[p + "attn.wo.weight"].T + W[p + "attn.wo.bias"]
        h = layernorm(t, W[p + "mlp_norm.weight"], W[p + "mlp_norm.bias"], eps)
        u = h @ W[p + "mlp.w1.weight"].T + W[p + "mlp.w1.bias"]
        u = 0.5 * u * (1.0 + torch.erf(u / math.sqrt(2.0)))
        t = t + u @ W[p + "mlp.w2.weight"].T + W[p + "mlp.w2.bias"]
    t = layernorm(t, W["final_norm.weight"], W["final_norm.bias"], eps)
    return t[:, 0] @ W["cls_head.weight"].T + W["cls_head.bias"]


# ---- metrics (docs/metrics.md) --------------------------------------------------------------------

def ratio_se(a, b):
    """cluster (delta-method) standard error of Σa/Σb over units"""
    n, sb = len(a), sum(b)
    r = sum(a) / sb
    return math.sqrt(n / (n - 1) * sum((x - r * y) ** 2 for x, y in zip(a, b))) / sb if n > 1 else float("nan")


def mean_se(x):
    n = len(x)
    m = sum(x) / n
    return math.sqrt(sum((v - m) ** 2 for v in x) / (n - 1)) / math.sqrt(n)


def ece(conf, correct, bins=15):
    cnt, cs, ok = [0] * bins, [0.0] * bins, [0.0] * bins
    for c, k in zip(conf, correct):
        b = min(max(int(c * bins), 0), bins - 1)
        cnt[b] += 1; cs[b] += c; ok[b] += k
    n = len(conf)
    return sum(abs(ok[b] - cs[b]) / n for b in range(bins) if cnt[b])


def lse_mean(lps):
    """log((1/K) Σ exp(lp_k)) over dim 0"""
    return torch.logsumexp(lps, 0) - math.log(lps.shape[0])


# ---- language model -----------------------------------------------------------------------------------

def oracle_lm(args, runs):
    cfg, w = read_llama2c_v0(args["model"])
    pieces, scores = read_tokenizer(args["tokenizer"], cfg["V"])
    index = {}
    for i, pc in enumerate(pieces):
        index.setdefault(pc, i)
    res = [json.load(open(os.path.join(r, "results.json"))) for r in runs]
    c0 = res[0]["config"]
    for r, d in zip(runs, res):  # the runs must share what the recomputation depends on
        for sec in ("data", "pathways"):
            check(d["config"][sec] == c0[sec], f"{r}: config.{sec} differs from {runs[0]}")
    pw, K = c0["pathways"], int(c0["pathways"]["members"])
    check(pw["granularity"] == "head", "oracle covers granularity = head only")
    check(c0["data"]["mode"] in ("", "documents") and c0["data"]["span"] == "0:1", "oracle covers documents mode, span 0:1")
    ctx = int(c0["data"]["context"]) or cfg["seq_len"]
    L, NH = cfg["L"], cfg["NH"]
    units = []  # per document: dict
    for doc_id, text in documents(args["text"], int(c0["data"]["limit"])):
        toks = encode(text, pieces, scores, index)[:ctx]
        n = len(toks)
        if n < 2: continue
        tgt = torch.tensor(toks[1:])
        dense_masks = [[draw_mask({"scheme": "dense", "ratio": 1}, 0, l, h, doc_id, n, True) for h in range(NH)]
                       for l in range(L)]
        zd = llama_logits(cfg, w, toks, dense_masks)[:-1]
        lpd = torch.log_softmax(zd, -1)
        u = {"id": doc_id, "tokens": n - 1, "bytes": sum(piece_bytes(toks[i], toks[i + 1], pieces) for i in range(n - 1)),
             "dense": -lpd.gather(1, tgt[:, None]).sum().item(), "mem": [], "kl": [], "agree": [], "kept": [],
             "queries": n, "allowed": L * NH * n * (n + 1) // 2}
        am_d = zd.argmax(-1)
        pd = lpd.exp()
        lpt, zs = [], []
        for k in range(K):
            masks = [[draw_mask(pw, k, l, h, doc_id, n, True) for h in range(NH)] for l in range(L)]
            u["kept"].append(sum(int(m.sum()) for ml in masks for m in ml))
            z = llama_logits(cfg, w, toks, masks)[:-1]
            lp = torch.log_softmax(z, -1)
            lpt.append(lp.gather(1, tgt[:, None])[:, 0])
            zs.append(z)
            u["mem"].append(-lpt[-1].sum().item())
            u["kl"].append((pd * (lpd - lp)).sum().item())
            u["agree"].append(int((z.argmax(-1) == am_d).sum()))
        u["curve"] = []
        for k in range(K):
            if pw["combine"] == "logit":
                zm = torch.stack(zs[:k + 1]).mean(0)
                u["curve"].append(-torch.log_softmax(zm, -1).gather(1, tgt[:, None]).sum().item())
            else:
                u["curve"].append(-lse_mean(torch.stack(lpt[:k + 1])).sum().item())
        units.append(u)
    tol = args["tol"]
    T = [u["tokens"] for u in units]
    Bt = [u["bytes"] for u in units]

    def lm_block(d, nll, what):
        close(d["nll_per_token"], sum(nll) / sum(T), tol, f"{what}.nll_per_token")
        close(d["nll_per_token_stderr"], ratio_se(nll, T), tol, f"{what}.nll_per_token_stderr")
        close(d["bits_per_byte"], sum(nll) / sum(Bt) / math.log(2), tol, f"{what}.bits_per_byte")
        check(d["tokens"] == sum(T), f"{what}.tokens: pathens {d['tokens']}, oracle {sum(T)}")
        check(d["bytes"] == sum(Bt), f"{what}.bytes: pathens {d['bytes']}, oracle {sum(Bt)}")
        check(d["units"] == len(units), f"{what}.units: pathens {d['units']}, oracle {len(units)}")
    for r, d in zip(runs, res):
        nf = len(fails)
        lm_block(d["dense"], [u["dense"] for u in units], f"{r}: dense")
        if K > 0:
            ens = [u["curve"][K - 1] for u in units]
            lm_block(d["ensemble"], ens, f"{r}: ensemble")
            lm_block(d["member_mean"], [sum(u["mem"]) / K for u in units], f"{r}: member_mean")
            dd = [e - u["dense"] for e, u in zip(ens, units)]
            md = d["ensemble"]["minus_dense"]
            close(md["mean"], sum(dd) / sum(T), tol, f"{r}: ensemble.minus_dense.mean (ensemble - dense)")
            close(md["stderr"], ratio_se(dd, T), tol, f"{r}: ensemble.minus_dense.stderr")
            check(len(d["members"]) == K and len(d["curve"]) == K, f"{r}: {K} members and curve points expected")
            for k in range(K):
                m = d["members"][k]
                lm_block(m, [u["mem"][k] for u in units], f"{r}: members[{k}]")
                lm_block(d["curve"][k], [u["curve"][k] for u in units], f"{r}: curve[{k}]")
                close(m["kl_from_dense"], sum(u["kl"][k] for u in units) / sum(T), tol, f"{r}: members[{k}].kl_from_dense")
                close(m["top1_agreement"], sum(u["agree"][k] for u in units) / sum(T), 2.5 / sum(T),
                      f"{r}: members[{k}].top1_agreement")
                kept, allowed = sum(u["kept"][k] for u in units), sum(u["allowed"] for u in units)
                q = sum(u["queries"] for u in units)
                check(abs(m["kept_fraction"] - kept / allowed) <= 4e-16,  # cJSON may print 15 digits
                      f"{r}: members[{k}].kept_fraction: pathens {m['kept_fraction']!r}, oracle {kept}/{allowed}")
                close(m["mean_kept_keys"], kept / (L * NH) / q, 1e-12, f"{r}: members[{k}].mean_kept_keys")
                close(m["mean_allowed_keys"], allowed / (L * NH) / q, 1e-12, f"{r}: members[{k}].mean_allowed_keys")
        pex = os.path.join(r, "per_example.msgpack")
        if os.path.exists(pex):
            rows = msgpack_load(open(pex, "rb").read())
            if check(len(rows) == len(units), f"{r}: per_example holds {len(rows)} documents, oracle {len(units)}"):
                for row, u in zip(rows, units):
                    w_ = f"{r}: per_example document {u['id']}"
                    ptol = tol * max(u["tokens"], 1)  # a sum over the document's tokens
                    check(row["unit"] == u["id"] and row["tokens"] == u["tokens"] and row["bytes"] == u["bytes"],
                          f"{w_}: unit/tokens/bytes {row['unit']}/{row['tokens']}/{row['bytes']}, oracle "
                          f"{u['id']}/{u['tokens']}/{u['bytes']}")
                    close(row["dense_nll"], u["dense"], ptol, f"{w_} dense_nll")
                    check(len(row["member_nll"]) == K, f"{w_}: {len(row['member_nll'])} member NLLs, expected {K}")
                    for k in range(min(K, len(row["member_nll"]))):
                        close(row["member_nll"][k], u["mem"][k], ptol, f"{w_} member_nll[{k}]")
                    if K > 0: close(row["ensemble_nll"], u["curve"][K - 1], ptol, f"{w_} ensemble_nll")
        print(f"{'ok  ' if len(fails) == nf else 'FAIL'} oracle lm: {r}: {len(units)} documents, {sum(T)} tokens, "
              f"{K} members ({pw['scheme']}, ratio {pw['ratio']}, combine {pw['combine']}): dense "
              f"{d['dense']['nll_per_token']:.6f} (oracle {sum(u['dense'] for u in units) / sum(T):.6f})"
              + (f", ensemble {d['ensemble']['nll_per_token']:.6f} (oracle "
                 f"{sum(u['curve'][K - 1] for u in units) / sum(T):.6f})" if K else ""))


# ---- image classifier ------------------------------------------------------------------------------

def oracle_vit(args, runs):
    cfg = json.load(open(os.path.join(args["model"], "config.json")))
    W = read_safetensors(os.path.join(args["model"], "model.safetensors"))
    res = [json.load(open(os.path.join(r, "results.json"))) for r in runs]
    c0 = res[0]["config"]
    for r, d in zip(runs, res):
        for sec in ("data", "pathways"):
            check(d["config"][sec] == c0[sec], f"{r}: config.{sec} differs from {runs[0]}")
    pw, K = c0["pathways"], int(c0["pathways"]["members"])
    check(pw["granularity"] == "head" and c0["data"]["span"] == "0:1", "oracle covers granularity head, span 0:1")
    check(cfg["head"] == "cls_token" and cfg["norm"] == "layernorm" and cfg["mlp"] == "gelu" and cfg["bias"]
          and not cfg["causal"] and cfg["pos"] == "learned", f"ViT config not covered by this oracle: {cfg}")
    px, labels = read_idx_images(args["images"], int(c0["data"]["limit"]))
    N, L, NH = px.shape[0], cfg["n_layers"], cfg["n_heads"]
    n = (cfg["image_size"] // cfg["patch_size"]) ** 2 + 1
    dense_m = [[torch.ones(n, n, dtype=torch.bool)] * NH] * L
    Pd = list(torch.softmax(vit_logits(cfg, W, px, dense_m), -1))
    Pm, Z, kept = [], [], [0] * K
    for k in range(K):
        masks = [[torch.stack([draw_mask(pw, k, l, h, i, n, False) for i in range(N)]) for h in range(NH)]
                 for l in range(L)]
        kept[k] = sum(int(m.sum()) for ml in masks for m in ml)
        z = vit_logits(cfg, W, px, masks)
        Z.append(list(z))
        Pm.append(list(torch.softmax(z, -1)))
    y = labels.tolist()

    def point(P):  # per image: nll, confidence, correct
        nll = [-math.log(p[t].item()) for p, t in zip(P, y)]
        conf = [p.max().item() for p in P]
        ok = [1.0 if int(p.argmax()) == t else 0.0 for p, t in zip(P, y)]
        return nll, conf, ok
    tol = args["tol"]

    def cls_block(d, P, what, with_ece=True):
        nll, conf, ok = point(P)
        acc = sum(ok) / N
        check(d["examples"] == N, f"{what}.examples: pathens {d['examples']}, oracle {N}")
        close(d["accuracy"], acc, 0.5 / N, f"{what}.accuracy")
        close(d["accuracy_stderr"], math.sqrt(acc * (1 - acc) / (N - 1)), 1e-9, f"{what}.accuracy_stderr")
        close(d["nll"], sum(nll) / N, tol, f"{what}.nll")
        close(d["nll_stderr"], mean_se(nll), tol, f"{what}.nll_stderr")
        if with_ece: close(d["ece"], ece(conf, ok), 10 * tol, f"{what}.ece")
        return nll, ok
    curve = []
    for k in range(K):
        if pw["combine"] == "logit":
            curve.append([torch.softmax(torch.stack([Z[j][i] for j in range(k + 1)]).mean(0), -1) for i in range(N)])
        else:
            curve.append([torch.stack([Pm[j][i] for j in range(k + 1)]).mean(0) for i in range(N)])
    for r, d in zip(runs, res):
        nf = len(fails)
        dn, dok = cls_block(d["dense"], Pd, f"{r}: dense")
        if K > 0:
            en, eok = cls_block(d["ensemble"], curve[K - 1], f"{r}: ensemble")
            e = d["ensemble"]
            dd = [a - b for a, b in zip(en, dn)]
            close(e["nll_minus_dense"]["mean"], sum(dd) / N, tol, f"{r}: ensemble.nll_minus_dense.mean (ensemble - dense)")
            close(e["nll_minus_dense"]["stderr"], mean_se(dd), tol, f"{r}: ensemble.nll_minus_dense.stderr")
            da = [a - b for a, b in zip(eok, dok)]
            close(e["accuracy_minus_dense"]["mean"], sum(da) / N, 0.5 / N, f"{r}: ensemble.accuracy_minus_dense.mean")
            check(len(d["members"]) == K and len(d["curve"]) == K, f"{r}: {K} members and curve points expected")
            for k in range(K):
                m = d["members"][k]
                cls_block(m, Pm[k], f"{r}: members[{k}]")
                cls_block(d["curve"][k], curve[k], f"{r}: curve[{k}]", with_ece=False)
                kl = sum((Pd[i] * (Pd[i].log() - Pm[k][i].log())).sum().item() for i in range(N)) / N
                close(m["kl_from_dense"], kl, tol, f"{r}: members[{k}].kl_from_dense")
                ag = sum(int(Pd[i].argmax()) == int(Pm[k][i].argmax()) for i in range(N)) / N
                close(m["top1_agreement"], ag, 0.5 / N, f"{r}: members[{k}].top1_agreement")
                check(abs(m["kept_fraction"] - kept[k] / (N * L * NH * n * n)) <= 4e-16,
                      f"{r}: members[{k}].kept_fraction: pathens {m['kept_fraction']!r}, oracle {kept[k]}/{N * L * NH * n * n}")
        pex = os.path.join(r, "per_example.msgpack")
        if os.path.exists(pex):
            rows = msgpack_load(open(pex, "rb").read())
            if check(len(rows) == N, f"{r}: per_example holds {len(rows)} images, oracle {N}"):
                mn = [point(Pm[k])[0] for k in range(K)]
                en = point(curve[K - 1])[0] if K else None
                for i, row in enumerate(rows):
                    w_ = f"{r}: per_example image {i}"
                    check(row["unit"] == i and row["label"] == y[i], f"{w_}: unit/label {row['unit']}/{row['label']}")
                    itol = lambda v: 10 * tol * max(1.0, abs(v))  # one image's NLL, float32 logits
                    close(row["dense_nll"], dn[i], itol(dn[i]), f"{w_} dense_nll")
                    for k in range(K):
                        close(row["member_nll"][k], mn[k][i], itol(mn[k][i]), f"{w_} member_nll[{k}]")
                    if K: close(row["ensemble_nll"], en[i], itol(en[i]), f"{w_} ensemble_nll")
        print(f"{'ok  ' if len(fails) == nf else 'FAIL'} oracle vit: {r}: {N} images, {K} members "
              f"({pw['scheme']}, ratio {pw['ratio']}, combine {pw['combine']}): dense accuracy "
              f"{d['dense']['accuracy']:.4f} (oracle {sum(dok) / N:.4f}), nll {d['dense']['nll']:.6f} (oracle "
              f"{sum(dn) / N:.6f}), ece {d['dense']['ece']:.6f}" + (f"; ensemble accuracy {d['ensemble']['accuracy']:.4f}"
                                                                    f", nll {d['ensemble']['nll']:.6f}" if K else ""))


# ---- llama2.c's reference values ----------------------------------------------------------------------

def golden(path):
    text, ntok, mean = None, None, None
    for line in open(path):
        if line.startswith("# text: "): text = line[len("# text: "):].rstrip("\n")
        if line.startswith("tokens "): ntok = len(line.split()) - 1
        if line.startswith("# mean_nll_nats_per_token "): mean = float(line.split()[2])
    if text is None or ntok is None or mean is None:
        raise ValueError(f"{path}: no '# text:', 'tokens' or '# mean_nll_nats_per_token' line")
    return text, ntok, mean


def main(argv):
    if len(argv) < 3 or argv[1] not in ("lm", "vit", "golden", "text"):
        print(__doc__)
        return 2
    mode, rest = argv[1], argv[2:]
    if mode == "text":
        text, _, _ = golden(rest[0])
        open(rest[1], "w").write(text + "\n")
        return 0
    if mode == "golden":
        _, ntok, mean = golden(rest[0])
        for r in rest[1:]:
            d = json.load(open(os.path.join(r, "results.json")))["dense"]
            nf = len(fails)
            check(d["tokens"] == ntok - 1, f"{r}: golden: {d['tokens']} scored tokens, llama2.c {ntok - 1}")
            close(d["nll_per_token"], mean, 2e-6, f"{r}: golden: dense nll_per_token vs llama2.c's run.c")
            print(f"{'ok  ' if len(fails) == nf else 'FAIL'} golden: {r}: dense {d['nll_per_token']:.7f} nats/token over "
                  f"{d['tokens']} tokens, llama2.c {mean:.7f} over {ntok - 1}")
        return 1 if fails else 0
    args, runs = {"tol": 2e-6}, []
    i = 0
    while i < len(rest):
        if rest[i].startswith("--"):
            args[rest[i][2:]] = float(rest[i + 1]) if rest[i] == "--tol" else rest[i + 1]
            i += 2
        else:
            runs.append(rest[i]); i += 1
    if not runs:
        print("oracle.py: no RUN_DIR given"); return 2
    (oracle_lm if mode == "lm" else oracle_vit)(args, runs)
    for f in fails:
        print("FAIL", f)
    return 1 if fails else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (OSError, ValueError, KeyError, struct.error) as e:
        print(f"FAIL: oracle.py: unreadable input: {type(e).__name__}: {e}")
        sys.exit(2)

#!/usr/bin/env python3
"""mkcorpus.py: (re)writes the seed corpus tests/fuzz/corpus/<harness>/ (tests/fuzz/README.md).

    tests/fuzz/mkcorpus.py BUILD BUILD_FUZZ [DATA_DIR]

BUILD: a normal build (its `pathens` and `tests/pathens_mkmodel` make real results.json,
frontier.json, plans and sweep.json); BUILD_FUZZ: the PATHENS_FUZZ=ON build (fuzz_journal and
fuzz_resume write their own seeds: a complete journal, a real training checkpoint); DATA_DIR: the
checkout's data/ folder that tools/fetch-data.sh fills (default), for excerpts of the real text. The
real tok512.bin is not copied into the corpus: run_fuzz.sh adds data/tok512.bin as a seed at run time.

Seeds are small (tiny models: dim 4, one layer) and derived from the real formats. The files named
known-* rebuild, in a tiny file, the reproducers of ../shared/reliability/fuzz-findings/ (README.txt)
that belong to a harness, so every replay runs them; files copied from there keep their name.
Rerunning gives the same bytes (pathens is deterministic; the runs use the fixed folder
/tmp/pathens-mkcorpus, whose paths results.json echoes; timing columns of train_log.csv are fixed).
fuzz_resume's state.json carries "@FP@" for the fingerprint, which the harness fills in."""
import gzip
import json
import math
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import zlib

SEP = b"\n=====8<=====\n"
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
FINDINGS = os.path.join(HERE, "..", "..", "..", "shared", "reliability", "fuzz-findings")


def out(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) <= 64 * 1024, (harness, name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def parts(*ps):
    return SEP.join(p.encode() if isinstance(p, str) else p for p in ps)


# ---- tensors --------------------------------------------------------------------------------------
def values(rng, n, name):
    if name.endswith("norm.weight") or name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
        return [1.0] * n
    if name.endswith(".bias") and "attn.bias" not in name:
        return [0.0] * n
    return [round(rng.gauss(0.0, 0.1), 4) for _ in range(n)]


def f16(x):
    return struct.pack("<e", x)


def bf16(x):
    return struct.pack("<f", x)[2:]


def safetensors(tensors, dtype="F32", header_hook=None, tail=b"", pad=True):
    """tensors: [(name, shape, floats)] -> bytes. header_hook(dict) may break the header."""
    header, blob = {}, b""
    for name, shape, vals in tensors:
        if dtype == "F32":
            raw = struct.pack("<%df" % len(vals), *vals)
        elif dtype == "F16":
            raw = b"".join(f16(v) for v in vals)
        else:
            raw = b"".join(bf16(v) for v in vals)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    text = json.dumps(header)
    if header_hook:
        text = header_hook(header) or json.dumps(header)
    h = text.encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob + tail


def native_specs(c):
    """model_list_tensors (src/model.c) in Python."""
    C, HID = c["dim"], c["hidden_dim"]
    KVC = c["n_kv_heads"] * (C // c["n_heads"])
    bias = c.get("bias", False)
    lnb = c["norm"] == "layernorm" and bias
    s = []
    if c.get("input", "tokens") == "tokens":
        s.append(("tok_emb.weight", (c["vocab_size"], C)))
    else:
        s.append(("patch_emb.weight", (C, c["channels"] * c["patch_size"] ** 2)))
        if bias:
            s.append(("patch_emb.bias", (C,)))
        if c["head"] == "cls_token":
            s.append(("cls_token", (C,)))
    if c["pos"] == "learned":
        s.append(("pos_emb.weight", (c["seq_len"], C)))
    for l in range(c["n_layers"]):
        L = lambda n, *sh: s.append(("layers.%d.%s" % (l, n), sh))
        L("attn_norm.weight", C)
        if lnb: L("attn_norm.bias", C)
        L("attn.wq.weight", C, C)
        if bias: L("attn.wq.bias", C)
        L("attn.wk.weight", KVC, C)
        if bias: L("attn.wk.bias", KVC)
        L("attn.wv.weight", KVC, C)
        if bias: L("attn.wv.bias", KVC)
        L("attn.wo.weight", C, C)
        if bias: L("attn.wo.bias", C)
        L("mlp_norm.weight", C)
        if lnb: L("mlp_norm.bias", C)
        L("mlp.w1.weight", HID, C)
        if bias: L("mlp.w1.bias", HID)
        L("mlp.w2.weight", C, HID)
        if bias: L("mlp.w2.bias", C)
        if c["mlp"] == "swiglu":
            L("mlp.w3.weight", HID, C)
            if bias: L("mlp.w3.bias", HID)
    s.append(("final_norm.weight", (C,)))
    if lnb:
        s.append(("final_norm.bias", (C,)))
    if c["head"] == "lm":
        s.append(("lm_head.weight", (c["vocab_size"], C)))
    elif c["head"] in ("cls_token", "cls_mean"):
        s.append(("cls_head.weight", (c["n_classes"], C)))
        if bias:
            s.append(("cls_head.bias", (c["n_classes"],)))
    return s


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def native_tensors(c, seed=1):
    rng = random.Random(seed)
    return [(n, sh, values(rng, numel(sh), n)) for n, sh in native_specs(c)]


BASE = {"format": "pathens", "version": 1, "norm_eps": 1e-5, "rope_theta": 10000.0}
GPT = dict(BASE, input="tokens", vocab_size=16, seq_len=8, dim=4, hidden_dim=8, n_layers=1, n_heads=2, n_kv_heads=2,
           norm="layernorm", pos="learned", mlp="gelu_tanh", causal=True, bias=True, head="lm_tied")
LLAMA = dict(BASE, input="tokens", vocab_size=16, seq_len=8, dim=4, hidden_dim=6, n_layers=1, n_heads=2, n_kv_heads=1,
             norm="rmsnorm", pos="rope", mlp="swiglu", causal=True, bias=False, head="lm")
VIT = dict(BASE, input="patches", vocab_size=0, seq_len=5, dim=4, hidden_dim=8, n_layers=1, n_heads=1, n_kv_heads=1,
           norm="layernorm", pos="learned", mlp="gelu", causal=False, bias=True, head="cls_token", n_classes=3,
           image_size=4, patch_size=2, channels=1, pixel_mean=0.5, pixel_std=0.25)
VIT_MEAN = dict(VIT, head="cls_mean", seq_len=4)


def cfg_text(c):
    return json.dumps(c, indent=1) + "\n"


def gen_safetensors():
    h = "safetensors"
    for name, c in [("gpt", GPT), ("llama", LLAMA), ("vit", VIT), ("vit_mean", VIT_MEAN)]:
        out(h, name, parts(safetensors(native_tensors(c)), cfg_text(c)))
    out(h, "gpt_f16", parts(safetensors(native_tensors(GPT), "F16"), cfg_text(GPT)))
    out(h, "llama_bf16", parts(safetensors(native_tensors(LLAMA), "BF16"), cfg_text(LLAMA)))
    out(h, "gpt_no_config", safetensors(native_tensors(GPT)))
    # Hugging Face GPT-2 names and config (Conv1D weights stored (in, out)), with and without the
    # "transformer." prefix, with the causal-mask buffers some exports carry, with an lm_head
    C, V, T, HID = 4, 16, 8, 16
    rng = random.Random(2)
    hf = [("wte.weight", (V, C)), ("wpe.weight", (T, C)), ("h.0.ln_1.weight", (C,)), ("h.0.ln_1.bias", (C,)),
          ("h.0.attn.c_attn.weight", (C, 3 * C)), ("h.0.attn.c_attn.bias", (3 * C,)),
          ("h.0.attn.c_proj.weight", (C, C)), ("h.0.attn.c_proj.bias", (C,)), ("h.0.ln_2.weight", (C,)),
          ("h.0.ln_2.bias", (C,)), ("h.0.mlp.c_fc.weight", (C, HID)), ("h.0.mlp.c_fc.bias", (HID,)),
          ("h.0.mlp.c_proj.weight", (HID, C)), ("h.0.mlp.c_proj.bias", (C,)), ("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    hft = [(n, sh, values(rng, numel(sh), n)) for n, sh in hf]
    hcfg = {"model_type": "gpt2", "n_embd": C, "n_layer": 1, "n_head": 2, "n_positions": T, "vocab_size": V,
            "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new", "n_inner": None}
    out(h, "hf_gpt2", parts(safetensors(hft), json.dumps(hcfg)))
    pre = [("transformer." + n, sh, v) for n, sh, v in hft]
    mask = [("h.0.attn.bias", (1, 1, T, T), [1.0 if j <= i else 0.0 for i in range(T) for j in range(T)])]
    head = [("lm_head.weight", (V, C), values(rng, V * C, "lm_head.weight"))]
    out(h, "hf_gpt2_prefix_lmhead", parts(safetensors(pre + head), json.dumps(dict(hcfg, activation_function="gelu"))))
    out(h, "hf_gpt2_maskbuf", parts(safetensors(hft + mask), json.dumps(hcfg)))
    # the other Hugging Face families (issue 11, docs/models.md): llama / qwen3 names (GQA, head_dim,
    # q/k norm), GPT-NeoX's fused per-head query_key_value (partial rotary, parallel residual), ViT
    rng = random.Random(3)
    NH, NKV, HS, HID = 2, 1, 4, 6
    lp = "model.layers.0."
    ll = [("model.embed_tokens.weight", (V, C)), (lp + "input_layernorm.weight", (C,)),
          (lp + "self_attn.q_proj.weight", (NH * HS, C)), (lp + "self_attn.k_proj.weight", (NKV * HS, C)),
          (lp + "self_attn.v_proj.weight", (NKV * HS, C)), (lp + "self_attn.o_proj.weight", (C, NH * HS)),
          (lp + "post_attention_layernorm.weight", (C,)), (lp + "mlp.gate_proj.weight", (HID, C)),
          (lp + "mlp.up_proj.weight", (HID, C)), (lp + "mlp.down_proj.weight", (C, HID)), ("model.norm.weight", (C,))]
    llt = [(n, sh, values(rng, numel(sh), n)) for n, sh in ll]
    lcfg = {"model_type": "llama", "hidden_size": C, "intermediate_size": HID, "num_hidden_layers": 1,
            "num_attention_heads": NH, "num_key_value_heads": NKV, "head_dim": HS, "vocab_size": V,
            "max_position_embeddings": T, "rms_norm_eps": 1e-6, "rope_theta": 500000.0, "tie_word_embeddings": True,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 4}}
    out(h, "hf_llama_bf16", parts(safetensors(llt, "BF16"), json.dumps(lcfg)))
    qn = [(lp + "self_attn.q_norm.weight", (HS,), [1.0] * HS), (lp + "self_attn.k_norm.weight", (HS,), [1.0] * HS)]
    out(h, "hf_qwen3", parts(safetensors(llt + qn), json.dumps(dict(lcfg, model_type="qwen3", rope_scaling=None))))
    np_ = "gpt_neox.layers.0."
    nx = [("gpt_neox.embed_in.weight", (V, C)), (np_ + "input_layernorm.weight", (C,)),
          (np_ + "input_layernorm.bias", (C,)), (np_ + "post_attention_layernorm.weight", (C,)),
          (np_ + "post_attention_layernorm.bias", (C,)), (np_ + "attention.query_key_value.weight", (3 * C, C)),
          (np_ + "attention.query_key_value.bias", (3 * C,)), (np_ + "attention.dense.weight", (C, C)),
          (np_ + "attention.dense.bias", (C,)), (np_ + "mlp.dense_h_to_4h.weight", (HID, C)),
          (np_ + "mlp.dense_h_to_4h.bias", (HID,)), (np_ + "mlp.dense_4h_to_h.weight", (C, HID)),
          (np_ + "mlp.dense_4h_to_h.bias", (C,)), ("gpt_neox.final_layer_norm.weight", (C,)),
          ("gpt_neox.final_layer_norm.bias", (C,)), ("embed_out.weight", (V, C))]
    nxt = [(n, sh, values(rng, numel(sh), n)) for n, sh in nx]
    ncfg = {"model_type": "gpt_neox", "hidden_size": C, "intermediate_size": HID, "num_hidden_layers": 1,
            "num_attention_heads": 1, "vocab_size": V, "max_position_embeddings": T, "rotary_pct": 0.5,
            "rotary_emb_base": 10000, "use_parallel_residual": True, "hidden_act": "gelu", "layer_norm_eps": 1e-5}
    out(h, "hf_gpt_neox", parts(safetensors(nxt), json.dumps(ncfg)))
    vp = "vit.encoder.layer.0."
    vi = [("vit.embeddings.cls_token", (1, 1, C)), ("vit.embeddings.position_embeddings", (1, 5, C)),
          ("vit.embeddings.patch_embeddings.projection.weight", (C, 1, 2, 2)),
          ("vit.embeddings.patch_embeddings.projection.bias", (C,))]
    for r, o in (("layernorm_before", C), ("layernorm_after", C)):
        vi += [(vp + r + ".weight", (o,)), (vp + r + ".bias", (o,))]
    for r, o, i in (("attention.attention.query", C, C), ("attention.attention.key", C, C),
                    ("attention.attention.value", C, C), ("attention.output.dense", C, C),
                    ("intermediate.dense", HID, C), ("output.dense", C, HID)):
        vi += [(vp + r + ".weight", (o, i)), (vp + r + ".bias", (o,))]
    vi += [("vit.layernorm.weight", (C,)), ("vit.layernorm.bias", (C,)), ("classifier.weight", (3, C)),
           ("classifier.bias", (3,))]
    vit = [(n, sh, values(rng, numel(sh), n)) for n, sh in vi]
    vcfg = {"model_type": "vit", "hidden_size": C, "intermediate_size": HID, "num_hidden_layers": 1,
            "num_attention_heads": 1, "image_size": 4, "patch_size": 2, "num_channels": 1, "qkv_bias": True,
            "id2label": {"0": "a", "1": "b", "2": "c"}, "hidden_act": "gelu", "layer_norm_eps": 1e-12}
    out(h, "hf_vit_f16", parts(safetensors(vit, "F16"), json.dumps(vcfg)))
    # the known findings, rebuilt tiny (same defect as the fuzz-findings reproducer of that name)
    vt = native_tensors(VIT)

    def hook_extra(hd):
        hd["x"] = {"dtype": "F32", "shape": [1000000000000, 1000000000000], "data_offsets": [0, 0]}
    out(h, "known-st_shape_overflow", parts(safetensors(vt, header_hook=hook_extra), cfg_text(VIT)))

    def hook_overlap(hd):
        hd["patch_emb.bias"]["data_offsets"] = list(hd["cls_token"]["data_offsets"])
    out(h, "known-st_overlap", parts(safetensors(vt, header_hook=hook_overlap), cfg_text(VIT)))

    def hook_alias(hd):
        for v in hd.values():
            v["data_offsets"] = [0, v["data_offsets"][1] - v["data_offsets"][0]]
    out(h, "known-st_alias_all", parts(safetensors(vt, header_hook=hook_alias), cfg_text(VIT)))
    out(h, "known-st_trailing", parts(safetensors(vt, tail=b"\0" * 64), cfg_text(VIT)))
    out(h, "known-st_junk_in_header", parts(safetensors(vt, header_hook=lambda hd: json.dumps(hd) + "   xyz"), cfg_text(VIT)))

    def hook_frac(hd):
        a, b = hd["cls_token"]["data_offsets"]
        return json.dumps(hd).replace('"cls_token": {"dtype": "F32", "shape": [4], "data_offsets": [%d, %d]}' % (a, b),
                                      '"cls_token": {"dtype": "F32", "shape": [4], "data_offsets": [%d.75, %d.75]}' % (a, b))
    out(h, "known-st_fracoff_inrange", parts(safetensors(vt, header_hook=hook_frac), cfg_text(VIT)))
    big = dict(VIT, image_size=65536, patch_size=65536)
    bt = [(n, (sh[0], 0) if n == "patch_emb.weight" else sh, [] if n == "patch_emb.weight" else v) for n, sh, v in vt]
    out(h, "known-st_patch65536", parts(safetensors(bt), cfg_text(big)))
    out(h, "known-vit_patch_65536", parts(safetensors(vt), cfg_text(big)))
    out(h, "known-vit_image_1e9", parts(safetensors(vt), cfg_text(dict(VIT, image_size=1000000000, patch_size=1))))
    out(h, "known-st_config_norm_eps_1e300", parts(safetensors(vt), cfg_text(VIT).replace('"norm_eps": 1e-05', '"norm_eps": 1e+300')))
    out(h, "known-st_config_pixel_std_1e39", parts(safetensors(vt), cfg_text(VIT).replace('"pixel_std": 0.25', '"pixel_std": 1e+39')))
    out(h, "known-gpt2_nembd_1e9", parts(safetensors(hft), json.dumps(
        {"model_type": "gpt2", "n_embd": 1000000000, "n_layer": 1, "n_head": 1, "n_positions": 4, "vocab_size": 5})))


# ---- llama2.c ----------------------------------------------------------------------------------
def llama2c(c, version, shared, seed=3, vocab_field=None):
    rng = random.Random(seed)
    spec = dict(native_specs(dict(c, head="lm_tied" if shared else "lm")))
    L = c["n_layers"]

    def arr(name):
        keys = [name] if name in spec else ["layers.%d.%s" % (l, name) for l in range(L)]
        vals = []
        for k in keys:
            vals += values(rng, numel(spec[k]), k)
        return struct.pack("<%df" % len(vals), *vals)
    hdr7 = [c["dim"], c["hidden_dim"], L, c["n_heads"], c["n_kv_heads"], c["vocab_size"], c["seq_len"]]
    if version == 0:
        if vocab_field is not None:
            hdr7[5] = vocab_field
        elif not shared:
            hdr7[5] = -hdr7[5]
        b = struct.pack("<7i", *hdr7)
        order = ["tok_emb.weight", "attn_norm.weight", "attn.wq.weight", "attn.wk.weight", "attn.wv.weight",
                 "attn.wo.weight", "mlp_norm.weight", "mlp.w1.weight", "mlp.w2.weight", "mlp.w3.weight", "final_norm.weight"]
        for o in order:
            b += arr(o)
        hs = c["dim"] // c["n_heads"]
        b += struct.pack("<%df" % (c["seq_len"] * hs), *[math.cos(i / 3) for i in range(c["seq_len"] * hs)])
    else:
        b = struct.pack("<Ii7iB", 0x616B3432, 1, *hdr7, 1 if shared else 0)
        b += b"\0" * (256 - len(b))
        order = ["attn_norm.weight", "mlp_norm.weight", "final_norm.weight", "tok_emb.weight", "attn.wq.weight",
                 "attn.wk.weight", "attn.wv.weight", "attn.wo.weight", "mlp.w1.weight", "mlp.w2.weight", "mlp.w3.weight"]
        for o in order:
            b += arr(o)
    if not shared:
        b += arr("lm_head.weight")
    return b


def gen_llama2c():
    h = "llama2c"
    c = dict(LLAMA, n_kv_heads=2)
    out(h, "v0_shared", llama2c(c, 0, True))
    out(h, "v0_classifier", llama2c(c, 0, False))
    out(h, "v0_gqa", llama2c(LLAMA, 0, True))
    out(h, "v1_shared", llama2c(c, 1, True))
    out(h, "v1_classifier", llama2c(LLAMA, 1, False))
    out(h, "v1_two_layers", llama2c(dict(c, n_layers=2), 1, True))
    # new finding: finite but large weights (x 1e10) overflow in the forward pass to NaN -> kern_expf UB
    b = bytearray(llama2c(c, 0, True))
    for o in range(28, len(b) - 3, 4):
        struct.pack_into("<f", b, o, struct.unpack_from("<f", b, o)[0] * 1e10)
    new_finding(h, "llama2c-huge_finite_weights", bytes(b))
    tiny = dict(LLAMA, dim=2, hidden_dim=2, n_layers=123, n_heads=1, n_kv_heads=1, vocab_size=4, seq_len=2)
    out(h, "known-llama2c_v0_123layers_tiny", llama2c(tiny, 0, True))  # mistaken for safetensors by "auto"
    for f in ("llama2c_v0_vocab_intmin.bin", "llama2c_v0_122layers_tiny.bin"):
        shutil.copy(os.path.join(FINDINGS, f), os.path.join(CORPUS, h, f))


# ---- tokenizer -----------------------------------------------------------------------------------
def tokenizer_bin(pieces):
    b = struct.pack("<i", max(len(p) for p, _ in pieces))
    for p, s in pieces:
        b += struct.pack("<fi", s, len(p)) + p
    return b


def gen_tokenizer():
    h = "tokenizer"
    # llama2.c layout: <unk>, <s>, </s>, 256 byte pieces <0xXX>, then merges with scores
    base = [(b"<unk>", 0.0), (b"\n<s>\n", 0.0), (b"\n</s>\n", 0.0)] + [(b"<0x%02X>" % i, 0.0) for i in range(256)]
    out(h, "tiny259", tokenizer_bin(base))
    merges = [(b" ", -1.0), (b"e", -2.0), (b"th", -3.0), (b" t", -4.0), (b"he", -5.0), (b"the", -6.0), (b" the", -7.0),
              (b"\xc3\xa9", -8.0), (b"caf\xc3\xa9", -9.0), (b"an", -9.0), (b"and", -10.0), (b"an", -11.0), (b" a", -12.0)]
    pieces = base + merges
    out(h, "tiny272_text", parts(tokenizer_bin(pieces[:260]), "the cat and the caf\xc3\xa9 \xe2\x82\xac\n\nthe end"))
    out(h, "tiny260", tokenizer_bin(pieces[:260]))
    out(h, "tiny300_ties", tokenizer_bin(pieces + [(b"x%d" % i, -1.0) for i in range(300 - len(pieces))]))
    # known finding (tok512.bin with every merge score NaN, or Inf), in a tiny vocabulary
    out(h, "known-tok_scores_nan", tokenizer_bin([(p, float("nan")) for p, _ in pieces[:260]]))
    out(h, "known-tok_scores_inf", tokenizer_bin([(p, float("inf")) for p, _ in pieces[:260]]))


# ---- INI ------------------------------------------------------------------------------------------
def gen_ini(src):
    h = "ini"
    for f in ("stories260k.ini", "fashion-vit.ini", "shakespeare-char-train.ini", "fashion-vit-train.ini"):
        out(h, f, open(os.path.join(src, "configs", f), "rb").read())
    out(h, "with_sets", parts(open(os.path.join(src, "configs", "stories260k.ini"), "rb").read(),
                               "data.limit=24\npathways.scheme=head-drop\npathways.ratio=2\npathways.members=8\n"
                               "importance.ablation=1\nrun.out=/tmp/x\ndata.span=0:0.5\ntrain.lr=3e-4\n"))
    out(h, "every_section", "[model]\npath = m.bin\nformat = llama2c\ntokenizer = bytes\nconfig = c.json\n"
        "[data]\npath = d.txt\nformat = text\nmode = windows\nlabels = l\nlimit = 3\ncontext = 16\nstride = 8\nspan = 0.1:0.9\n"
        "[run]\nout = o\nbatch = 2\nshard = 4\nmember_block = 1\nper_example = 1\n"
        "[pathways]\nscheme = random-k\nratio = 3\nsigma = 1.5\nlambda = inf\nkeep = 0.5\nmembers = 3\nseed = 9\n"
        "granularity = layer\ncombine = logit\nplan = p.json\n[importance]\nstatistics = 1\nablation = 0\n"
        "[train]\nsteps = 10\nbatch = 4\ngrad_chunks = 2\ncontext = 8\nlr = 1e-3\nmin_lr = 1e-4\nwarmup = 2\n"
        "weight_decay = 0.1\nbeta1 = 0.9\nbeta2 = 0.95\neps = 1e-8\nclip = 1\nfinetune_dense_steps = 2\nseed = 5\n"
        "checkpoint_minutes = 0.5\ncheckpoint_steps = 3\nlog_every = 1\n")
    for f in ("ini_dup.ini", "ini_nul.ini"):  # the findings' data paths pointed at the fuzzer's machine: data/ here
        raw = re.sub(rb"/tmp/[^/\n]+/data/", b"../data/", open(os.path.join(FINDINGS, f), "rb").read())
        out(h, f, raw)


# ---- text and IDX data ------------------------------------------------------------------------------
def gen_text(data_dir):
    h = "text"
    val = open(os.path.join(data_dir, "tinystories_val.txt"), "rb").read()
    out(h, "tinystories_head", val[:1500])
    shk = open(os.path.join(data_dir, "tinyshakespeare.txt"), "rb").read()
    out(h, "shakespeare_head", shk[:1000])
    out(h, "utf8_mixed", "caf\u00e9 \u20ac \U0001F600 na\u00efve\r\n\r\n\u3053\u3093\u306b\u3061\u306f\n\n\n x\n")
    out(h, "blank_lines", "\n \n\t\n\na\n\n\n\nb c\n")
    out(h, "one_char", "a")
    out(h, "invalid_utf8", b"\xff\xfe\xc3\x28 \xe2\x82 \xf0\x9f\x98\n\nok\n")
    for f in ("txt_only_nul.txt", "txt_utf16.txt"):
        shutil.copy(os.path.join(FINDINGS, f), os.path.join(CORPUS, h, f))


def idx(magic_dims, dims, payload):
    return struct.pack(">I", magic_dims) + b"".join(struct.pack(">I", d) for d in dims) + payload


def gz(b, mtime=0):
    return gzip.compress(b, mtime=mtime)


def gen_idx():
    h = "idx"
    rng = random.Random(4)
    n, r, c = 5, 4, 3
    images = idx(0x803, (n, r, c), bytes(rng.randrange(256) for _ in range(n * r * c)))
    labels = idx(0x801, (n,), bytes([0, 3, 1, 9, 2]))
    out(h, "raw", parts(images, labels))
    out(h, "gz", parts(gz(images), gz(labels)))
    out(h, "gz_images_raw_labels", parts(gz(images), labels))
    out(h, "zero_images", parts(idx(0x803, (0, 28, 28), b""), idx(0x801, (0,), b"")))
    # known findings: a header promising 2^40 bytes; gzip trailer cut off; junk after the stream
    huge = open(os.path.join(FINDINGS, "idx_huge_header-images-idx3-ubyte"), "rb").read()
    out(h, "known-idx_huge_header", parts(huge, labels))
    out(h, "known-idxgzt", parts(gz(images)[:-8], gz(labels)[:-8]))
    out(h, "known-idxgzj", parts(gz(images) + b"junk after the gzip stream", gz(labels) + b"\0junk"))
    # new finding: dims 2^26 x 5*2^24 x 2^26 multiply past 2^64 to 0 bytes; realloc(raw, 0) then freed raw twice
    new_finding(h, "idx-dims_product_overflow",
                parts(struct.pack(">4I", 0x803, 1 << 26, 5 << 24, 1 << 26), labels))


# ---- plans ------------------------------------------------------------------------------------------
def gen_plan():
    h = "plan"
    heads = [{"layer": l, "head": k, "keep": (l + k) % 3 != 0, "window": [0, 4, 16][(l * 8 + k) % 3]}
             for l in range(5) for k in range(8)]
    out(h, "plan_5x8", json.dumps({"format": "pathens-plan", "version": 1, "n_layers": 5, "n_heads": 8, "budget": 0.5,
                                   "flops_fraction": 0.41, "source": "runs/x", "heads": heads}, indent=1))
    out(h, "plan_2x2", json.dumps({"format": "pathens-plan", "version": 1, "n_layers": 2, "n_heads": 2, "budget": 1,
                                   "flops_fraction": 1, "source": "", "heads": [
                                       {"layer": 0, "head": 1, "keep": False, "window": 0},
                                       {"layer": 1, "head": 0, "keep": True, "window": 2}]}))
    for f in sorted(os.listdir(FINDINGS)):
        if f.startswith("plan_"):
            shutil.copy(os.path.join(FINDINGS, f), os.path.join(CORPUS, h, f))


# ---- runs of the real binary: results.json, frontier.json, sweep.json, plans ---------------------------
def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if r.returncode != 0:
        sys.exit("mkcorpus: %s failed (%d):\n%s" % (" ".join(cmd), r.returncode, r.stderr.decode()))


def gen_runs(build, data_dir, tmp):
    pathens = os.path.join(build, "pathens")
    mk = os.path.join(build, "tests", "pathens_mkmodel")
    run([mk, "gpt", os.path.join(tmp, "gpt")])
    text = os.path.join(tmp, "data.txt")
    with open(text, "wb") as f:
        f.write(open(os.path.join(data_dir, "tinystories_val.txt"), "rb").read()[:3000])
    ini = os.path.join(tmp, "eval.ini")
    with open(ini, "w") as f:
        f.write("[model]\npath = gpt/model.safetensors\ntokenizer = bytes\n[data]\npath = data.txt\nlimit = 6\n"
                "context = 32\n[run]\nout = run\n[pathways]\nscheme = head-drop\nratio = 2\nmembers = 3\n"
                "[importance]\nstatistics = 1\nablation = 1\n")
    run([pathens, "eval", ini, "--quiet"])
    run([pathens, "prune", os.path.join(tmp, "run"), "--budget", "0.3", "--budget", "0.6", "--evaluate", "--quiet"])
    res = open(os.path.join(tmp, "run", "results.json"), "rb").read()
    fr = open(os.path.join(tmp, "run", "frontier.json"), "rb").read()
    # a dense-only run, and an image classifier run (Fashion-MNIST, when installed)
    run([pathens, "eval", ini, "--quiet", "--set", "pathways.members=0", "--set", "importance.statistics=0",
         "--set", "importance.ablation=0", "--set", "run.out=" + os.path.join(tmp, "dense")])
    dense = open(os.path.join(tmp, "dense", "results.json"), "rb").read()
    fashion = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
    img = None
    if os.path.exists(fashion):
        run([mk, "vit", os.path.join(tmp, "vit")])
        run([pathens, "eval", ini, "--quiet", "--set", "model.path=" + os.path.join(tmp, "vit", "model.safetensors"),
             "--set", "model.tokenizer=none", "--set", "data.path=" + fashion, "--set", "data.limit=16",
             "--set", "data.context=0", "--set", "run.out=" + os.path.join(tmp, "img")])
        run([pathens, "prune", os.path.join(tmp, "img"), "--budget", "0.5", "--evaluate", "--quiet"])
        img = open(os.path.join(tmp, "img", "results.json"), "rb").read()
        img_fr = open(os.path.join(tmp, "img", "frontier.json"), "rb").read()
    # a sweep of 2 x 2 points, aggregated
    sw = os.path.join(tmp, "sweep.ini")
    with open(sw, "w") as f:
        f.write("[model]\npath = gpt/model.safetensors\ntokenizer = bytes\n[data]\npath = data.txt\nlimit = 4\n"
                "context = 16\n[run]\nout = sw\n[pathways]\nscheme = unbiased, local\nratio = 2, 4\nmembers = 2\n")
    run([pathens, "sweep", sw, "--quiet"])
    run([pathens, "sweep", sw, "--aggregate"])
    swj = open(os.path.join(tmp, "sw", "sweep.json"), "rb").read()
    # report: results.json | frontier.json | sweep.json
    out("report", "lm_importance_frontier", parts(res, fr, swj))
    out("report", "lm_results_only", res)
    big = json.loads(res)  # new finding: 4096 x 4096 heads claimed, 8 listed: gigabytes, minutes
    big["importance"]["n_layers"] = big["importance"]["n_heads"] = 4096
    new_finding("report", "report-importance_4096x4096", json.dumps(big))
    new_finding("prune", "prune-importance_4096x4096", json.dumps(big))
    out("report", "dense_only", dense)
    out("report", "sweep_only", parts(b"{}", b"", swj))
    out("prune", "lm_importance", res)
    out("prune", "dense_only", dense)
    out("sweep", "lm_both", parts(res, dense))
    out("sweep", "lm_same", res)
    if img:
        out("report", "images_frontier", parts(img, img_fr))
        out("prune", "images", img)
        out("sweep", "images_and_lm", parts(img, res))
    for b in ("0.3", "0.6"):
        out("plan", "pruned_%s" % b, open(os.path.join(tmp, "run", "plan_%s.json" % b), "rb").read())


def gen_self_seeded(build_fuzz, tmp):
    """fuzz_journal and fuzz_resume write seeds of their own fixed evaluation / training run."""
    empty = os.path.join(tmp, "empty")
    open(empty, "wb").close()
    save = os.path.join(tmp, "save")
    os.makedirs(save, exist_ok=True)
    env = dict(os.environ, PATHENS_FUZZ_SAVE=save)
    for h in ("journal", "resume"):
        run([os.path.join(build_fuzz, "tests", "fuzz", "fuzz_" + h), empty], env=env)
    js = [open(os.path.join(save, "journal-%02d.msgpack" % i), "rb").read() for i in range(1, 6)]
    j1, j2 = js[0], js[1]
    for name, j in zip(("text_docs", "text_docs_split", "text_windows", "images", "images_split"), js):
        out("journal", "complete_" + name, j)
    out("journal", "half_images_split", first_records(js[4], 3))
    out("journal", "header_only_1", first_records(j1, 1))
    out("journal", "half_2", first_records(j2, 4))
    out("journal", "torn_tail_1", j1[:-7])
    # known findings, rebuilt on this harness' journal: checksum-valid records with huge kept
    # counts, with NaN dense values, and one whose msgpack asks for a huge allocation
    out("journal", "known-journal_kept_int64_overflow", patch_bin(j1, b"kept", lambda n: struct.pack("<q", 2 ** 62) * (n // 8)))
    out("journal", "known-journal_nan_dense_crc_ok", patch_bin(j1, b"dense", lambda n: struct.pack("<d", float("nan")) * (n // 8)))
    huge = b"\x83\xa1t\xa4task\xa4task\x01\xa4rows\xdd\x7f\xff\xff\xff"
    out("journal", "known-journal_msgpack_huge_alloc", first_records(j1, 1) + record(huge))
    p = open(os.path.join(save, "resume-seed"), "rb").read().split(SEP)
    # train_log.csv: the timing columns (examples_per_s, tokens_per_s, elapsed_s) made fixed
    rows = p[6].decode().splitlines()
    for i in range(1, len(rows)):
        f = rows[i].split(",")
        f[6], f[7], f[11] = "1000.0", "8000.0", "0.010"
        rows[i] = ",".join(f)
    p[6] = ("\n".join(rows) + "\n").encode()
    seed = SEP.join(p)
    out("resume", "checkpoint_step1", seed)
    out("resume", "no_log", SEP.join(p[:6]))
    out("resume", "latest_only", p[0])
    out("resume", "state_step_big", SEP.join([p[0], p[1].replace(b'"step": 1', b'"step": 1e300')] + p[2:]))
    # new findings of this harness (tests/fuzz/findings-new/README.md), in the corpus too
    new = {
        "resume-state_step_1e300": SEP.join([p[0], p[1].replace(b'"step": 1', b'"step": 1e300')] + p[2:]),
        "resume-nan_weight": SEP.join(p[:3] + [st_patch(p[3], "tok_emb.weight", 5, float("nan"))] + p[4:]),
        "resume-nan_weight_final_step": SEP.join([p[0], p[1].replace(b'"step": 1', b'"step": 3'), p[2],
                                                  st_patch(p[3], "tok_emb.weight", 5, float("nan"))] + p[4:]),
        "resume-start_nan_weight": SEP.join([b"none"] + p[1:3] + [st_patch(p[3], "layers.0.attn.wq.weight", 2, float("nan"))] + p[4:]),
        "resume-huge_finite_weights": SEP.join(p[:3] + [st_scale(p[3], 1e15)] + p[4:]),
        "resume-adam_v_negative": SEP.join(p[:5] + [st_patch(p[5], "adam_v.tok_emb.weight", 0, -1.0)] + p[6:]),
        "resume-log_window_inf": SEP.join([p[0], p[1].replace(b'"log_window": [', b'"log_window": [1e999, ')
                                           .replace(b', 0]', b']', 1)] + p[2:]),
    }
    for name, data in new.items():
        new_finding("resume", name, data)


def new_finding(harness, name, data):
    """a new finding of this work (findings-new/README.md): its reproducer, also in the corpus"""
    out(harness, name, data)
    os.makedirs(os.path.join(HERE, "findings-new"), exist_ok=True)
    with open(os.path.join(HERE, "findings-new", name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def gen_findings_new():
    """hand-minimised results.json files of the new findings in the report / prune / sweep readers"""
    def res(imp_heads=None, n_layers=1, n_heads=1, dense=None, arch=None, **extra):
        r = {"config": {"pathways": {"scheme": "local", "ratio": 2}}, "dense": dense or {"nll_per_token": 1.5, "tokens": 10, "units": 2},
             "model": {"architecture": arch or {"causal": True}}}
        if imp_heads is not None:
            r["importance"] = {"n_layers": n_layers, "n_heads": n_heads, "heads": imp_heads}
        r.update(extra)
        return json.dumps(r)
    h1 = [{"layer": 0, "head": 0, "ablation": {"delta": 0.5}}]
    new_finding("prune", "prune-head_out_of_range", res([{"layer": 0, "head": 5, "ablation": {"delta": 0.5}}]))
    new_finding("prune", "prune-head_layer_missing", res([{"head": 0, "ablation": {"delta": 0.5}}]))
    new_finding("prune", "prune-n_layers_missing", json.dumps(dict(json.loads(res(h1)), importance={"n_heads": 1, "heads": h1})))
    img = {"causal": False, "image_size": 28, "patch_size": 4}
    new_finding("prune", "prune-image_head_missing", res(h1, dense={"nll": 0.5, "accuracy": 0.8}, arch=img))
    new_finding("prune", "prune-image_patch_missing", res(h1, dense={"nll": 0.5, "accuracy": 0.8},
                                                          arch={"causal": False, "image_size": 28, "head": "cls_token"}))
    new_finding("prune", "prune-band_31", res([{"layer": 0, "head": 0, "ablation": {"delta": 0.5},
                                                 "attention": {"mass_by_band": [0.0] * 31 + [1.0]}}]))


    sw = {"dense": {"nll_per_token": 1.5}, "ensemble": {"nll_per_token": 1.4, "minus_dense": {"mean": -0.1, "ci95": [-0.2]}},
          "members": [{"nll_per_token": 1.6, "kept_fraction": 0.5}]}
    new_finding("sweep", "sweep-gain_ci95_short", json.dumps(sw))
    sw["ensemble"]["minus_dense"]["ci95"] = "n/a"
    new_finding("sweep", "sweep-gain_ci95_not_array", json.dumps(sw))


    # a sweep INI (no harness: `pathens sweep FILE --count`): 12 keys of 64 values, 2^72 points
    vals = ",".join(str(i) for i in range(1, 65))  # (inih reads lines of up to 200 bytes)
    ini = "[model]\npath = m.bin\n[data]\npath = d.txt\n[pathways]\n"
    ini += "".join("%s = %s\n" % (k, vals) for k in ("ratio", "sigma", "lambda", "keep", "seed", "members"))
    ini += "[run]\n" + "".join("%s = %s\n" % (k, vals) for k in ("batch", "shard", "member_block"))
    ini += "[data]\n" + "".join("%s = %s\n" % (k, vals) for k in ("limit", "context", "stride"))
    with open(os.path.join(HERE, "findings-new", "sweep_ini-points_overflow.ini"), "w") as f:
        f.write(ini)


def st_scale(st, k):
    """every float32 of a safetensors file times k"""
    b = bytearray(st)
    n = struct.unpack_from("<Q", b, 0)[0]
    for o in range(8 + n, len(b) - 3, 4):
        struct.pack_into("<f", b, o, struct.unpack_from("<f", b, o)[0] * k)
    return bytes(b)


def st_patch(st, name, idx, val):
    """one float32 of tensor `name` of a safetensors file set to val"""
    b = bytearray(st)
    n = struct.unpack_from("<Q", b, 0)[0]
    h = json.loads(bytes(b[8:8 + n]))
    struct.pack_into("<f", b, 8 + n + h[name]["data_offsets"][0] + 4 * idx, val)
    return bytes(b)


def records(j):
    pos = 0
    while pos + 12 <= len(j):
        n = struct.unpack_from("<I", j, pos + 4)[0]
        yield j[pos:pos + 12 + n]
        pos += 12 + n


def first_records(j, k):
    return b"".join(list(records(j))[:k])


def record(payload):
    return b"PJR1" + struct.pack("<II", len(payload), zlib.crc32(payload) & 0xFFFFFFFF) + payload


def patch_bin(j, key, make):
    """every task record's bin field `key` (msgpack str key, then bin8/16/32) replaced; crc redone"""
    outb = b""
    for r in records(j):
        p = bytearray(r[12:])
        k = bytes([0xA0 | len(key)]) + key
        at = p.find(k)
        if at >= 0:
            at += len(k)
            t = p[at]
            if t == 0xC4:
                hl, n = 2, p[at + 1]
            elif t == 0xC5:
                hl, n = 3, struct.unpack_from(">H", p, at + 1)[0]
            else:
                assert t == 0xC6, hex(t)
                hl, n = 5, struct.unpack_from(">I", p, at + 1)[0]
            p[at + hl:at + hl + n] = make(n)
        outb += record(bytes(p))
    return outb


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    build, build_fuzz = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    data_dir = sys.argv[3] if len(sys.argv) > 3 else os.path.join(HERE, "..", "..", "data")
    src = os.path.join(HERE, "..", "..")
    for d in (CORPUS, os.path.join(HERE, "findings-new")):
        for dd, _, fs in os.walk(d):
            for f in fs:
                if f != "README.md":
                    os.remove(os.path.join(dd, f))
    gen_safetensors()
    gen_llama2c()
    gen_tokenizer()
    gen_ini(src)
    gen_text(data_dir)
    gen_idx()
    gen_plan()
    gen_findings_new()
    tmp = "/tmp/pathens-mkcorpus"  # a fixed folder: results.json echoes the paths of its config
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    gen_runs(build, data_dir, tmp)
    gen_self_seeded(build_fuzz, tmp)
    shutil.rmtree(tmp)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(CORPUS) for f in fs)
    print("mkcorpus: %d files, %d bytes in %s" % (sum(len(fs) for _, _, fs in os.walk(CORPUS)), total, CORPUS))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""make_ckpt_files.py: the checkpoint / model-config reproducers of tests/fuzz/regress/ckpt.tsv,
and the tiny model + tokenizers of data.tsv's tokenizer-score rows.

The fuzz findings (../shared/reliability/fuzz-findings/) are 560 KB copies of the shipped ViT with
one defect each; here each defect is rebuilt on a tiny model (a 1-layer ViT with dim 4, or a
tiny llama2.c model), so the files stay a few KB. Deterministic: rerunning it rewrites the same
bytes. Run from anywhere:  python3 tests/fuzz/regress/make_ckpt_files.py
Layouts: docs/formats.md (llama2.c v0, safetensors, native config.json).
"""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "files")


class Lcg:
    """small deterministic values in (-0.5, 0.5): finite weights without numpy"""

    def __init__(self, seed):
        self.s = seed

    def f(self):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return ((self.s >> 40) / float(1 << 24) - 0.5) * 0.5


def floats(n, rng):
    return struct.pack("<%df" % n, *[rng.f() for _ in range(n)])


# ---- a tiny native ViT (image 4x4, patch 2, dim 4, 1 layer, CLS token, 2 classes) ---------------

VIT_CONFIG = {
    "format": "pathens", "version": 1, "dim": 4, "hidden_dim": 8, "n_layers": 1, "n_heads": 1,
    "n_kv_heads": 1, "vocab_size": 0, "seq_len": 5, "norm": "layernorm", "norm_eps": 1e-05,
    "pos": "learned", "rope_theta": 10000, "mlp": "gelu", "causal": False, "bias": True,
    "head": "cls_token", "n_classes": 2, "input": "patches", "image_size": 4, "patch_size": 2,
    "channels": 1, "pixel_mean": 0.286, "pixel_std": 0.353,
}


def vit_tensors(pp=4):
    """(name, shape) in model_list_tensors order; pp = channels * patch^2"""
    C, H = 4, 8
    t = [("patch_emb.weight", [C, pp]), ("patch_emb.bias", [C]), ("cls_token", [C]), ("pos_emb.weight", [5, C])]
    for s, shape in [("attn_norm.weight", [C]), ("attn_norm.bias", [C]),
                     ("attn.wq.weight", [C, C]), ("attn.wq.bias", [C]), ("attn.wk.weight", [C, C]),
                     ("attn.wk.bias", [C]), ("attn.wv.weight", [C, C]), ("attn.wv.bias", [C]),
                     ("attn.wo.weight", [C, C]), ("attn.wo.bias", [C]), ("mlp_norm.weight", [C]),
                     ("mlp_norm.bias", [C]), ("mlp.w1.weight", [H, C]), ("mlp.w1.bias", [H]),
                     ("mlp.w2.weight", [C, H]), ("mlp.w2.bias", [C])]:
        t.append(("layers.0." + s, shape))
    t += [("final_norm.weight", [C]), ("final_norm.bias", [C]), ("cls_head.weight", [2, C]), ("cls_head.bias", [2])]
    return t


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def safetensors(tensors, seed=1, offsets=None, extra_entries=None, header_tail=b"", trailing=b"", raw_offsets=None):
    """tensors: [(name, shape)] as F32, data back to back. offsets: {name: (begin, end)} to forge;
    raw_offsets: {name: "text"} written verbatim (fractions); extra_entries: more header entries
    without data; header_tail: bytes after the JSON object (inside the header length); trailing:
    bytes after the data section."""
    rng = Lcg(seed)
    head, data, at = {}, b"", 0
    for name, shape in tensors:
        n = numel(shape)
        blob = floats(n, rng)
        head[name] = {"dtype": "F32", "shape": shape, "data_offsets": [at, at + 4 * n]}
        if offsets and name in offsets:
            head[name]["data_offsets"] = list(offsets[name])
        data += blob
        at += 4 * n
    for name, entry in (extra_entries or {}).items():
        head[name] = entry
    text = json.dumps(head, separators=(",", ":"))
    for name, off in (raw_offsets or {}).items():
        good = json.dumps(head[name]["data_offsets"], separators=(",", ":"))
        key = '"%s":{"dtype":"F32","shape":%s,"data_offsets":%s}' % (
            name, json.dumps(head[name]["shape"], separators=(",", ":")), good)
        assert key in text, key
        text = text.replace(key, key.replace(good, off))
    h = text.encode() + header_tail
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)  # spaces: the padding the format allows
    return struct.pack("<Q", len(h)) + h + data + trailing


def write(rel, data):
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def vit_dir(name, st_bytes, config=None, **changes):
    cfg = dict(config or VIT_CONFIG)
    cfg.update(changes)
    write(name + "/model.safetensors", st_bytes)
    # json.dumps writes 1e300 and -1e39 as numbers (cJSON reads them as doubles)
    write(name + "/config.json", (json.dumps(cfg) + "\n").encode())


# ---- a tiny Hugging Face Llama folder (dim 4, 2 heads of 2, 1 KV head, vocab 256, 2 shards) -------

HF_LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4, "intermediate_size": 4,
    "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 256,
    "max_position_embeddings": 16, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "hidden_act": "silu",
    "tie_word_embeddings": False, "torch_dtype": "float32",
}


def hf_llama_tensors():
    p = "model.layers.0."
    return [("model.embed_tokens.weight", [256, 4]), (p + "input_layernorm.weight", [4]),
            (p + "self_attn.q_proj.weight", [4, 4]), (p + "self_attn.k_proj.weight", [2, 4]),
            (p + "self_attn.v_proj.weight", [2, 4]), (p + "self_attn.o_proj.weight", [4, 4]),
            (p + "post_attention_layernorm.weight", [4]), (p + "mlp.gate_proj.weight", [4, 4]),
            (p + "mlp.up_proj.weight", [4, 4]), (p + "mlp.down_proj.weight", [4, 4]),
            ("model.norm.weight", [4]), ("lm_head.weight", [256, 4])]


def hf_llama_dir(name, index_extra=None, index_override=None, drop_shard2=False, cut_shard2=0, **changes):
    """a sharded HF llama folder: the first 6 tensors in shard 1, the rest in shard 2"""
    t = hf_llama_tensors()
    shards = {"model-00001-of-00002.safetensors": t[:6], "model-00002-of-00002.safetensors": t[6:]}
    wm = {}
    for i, (fn, ts) in enumerate(sorted(shards.items())):
        blob = safetensors(ts, seed=10 + i)
        if fn.startswith("model-00002") and cut_shard2:
            blob = blob[:len(blob) - cut_shard2]
        if not (fn.startswith("model-00002") and drop_shard2):
            write(name + "/" + fn, blob)
        wm.update({n: fn for n, _ in ts})
    wm.update(index_extra or {})
    index = index_override if index_override is not None else {"metadata": {"total_size": 0}, "weight_map": wm}
    write(name + "/model.safetensors.index.json", (json.dumps(index, indent=2) + "\n").encode())
    cfg = dict(HF_LLAMA_CONFIG)
    cfg.update(changes)
    write(name + "/config.json", (json.dumps(cfg, indent=2) + "\n").encode())


# ---- tiny llama2.c v0 (7 x int32 header, float32 arrays, RoPE tables) ------------------------

def llama2c_v0(dim, hidden, layers, heads, kv_heads, vocab, seq_len, seed=3):
    hs = dim // heads
    kvc = kv_heads * hs
    n = abs(vocab) * dim  # token embedding
    n += layers * (dim + dim * dim + 2 * kvc * dim + dim * dim + dim + 3 * hidden * dim)
    n += dim + seq_len * hs  # final norm, freq_cis_real + freq_cis_imag
    if vocab < 0:
        n += -vocab * dim  # separate classifier
    return struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab, seq_len) + floats(n, Lcg(seed))


def main():
    # a valid tiny ViT (the positive control and the base of the st_* defects)
    vit_dir("vit_tiny_ok", safetensors(vit_tensors()))

    # -- undefined behaviour (integer overflow) --
    # llama2.c v0 header with vocab_size = INT_MIN: negating it overflowed
    write("llama2c_v0_vocab_intmin.bin", struct.pack("<7i", 64, 172, 5, 8, 4, -(1 << 31), 512))
    # a tensor of shape [1e12, 1e12]: the element count overflowed int64
    vit_dir("st_shape_overflow", safetensors(vit_tensors(), extra_entries={
        "x": {"dtype": "F32", "shape": [10 ** 12, 10 ** 12], "data_offsets": [0, 0]}}))
    # HF GPT-2 n_embd 1e9: 4 * n_embd overflowed int (the tensors never get read)
    write("gpt2_nembd_1e9/model.safetensors", safetensors([]))
    write("gpt2_nembd_1e9/config.json", b'{"model_type": "gpt2", "n_embd": 1000000000, "n_layer": 1, "n_head": 1, '
          b'"n_positions": 4, "vocab_size": 5}\n')
    # image_size 1e9, patch 1: patches per side squared overflowed int
    vit_dir("vit_image_1e9", safetensors(vit_tensors()), image_size=1000000000, patch_size=1)
    # image 65536, patch 65536: channels * patch * patch wrapped to 0 ...
    vit_dir("vit_patch_65536", safetensors(vit_tensors()), image_size=65536, patch_size=65536)
    # ... so a [4, 0] patch weight matched it
    vit_dir("st_patch65536", safetensors(vit_tensors(pp=0)), image_size=65536, patch_size=65536)

    # -- accepted silently --
    vit_dir("st_config_norm_eps_1e300", safetensors(vit_tensors()), norm_eps=1e300)      # inf as float32
    vit_dir("st_config_pixel_std_1e39", safetensors(vit_tensors()), pixel_mean=-1e39, pixel_std=1e39)
    vit_dir("st_config_pixel_std_1e30", safetensors(vit_tensors()), pixel_std=1e30)      # finite, absurd
    vit_dir("st_config_norm_eps_big", safetensors(vit_tensors()), norm_eps=1e30)
    # patch_emb.bias pointed at cls_token's bytes
    vit_dir("st_overlap", safetensors(vit_tensors(), offsets={"patch_emb.bias": (80, 96)}))
    # every tensor at data offset 0
    al = {n: (0, 4 * numel(s)) for n, s in vit_tensors()}
    vit_dir("st_alias_all", safetensors(vit_tensors(), offsets=al))
    # 64 bytes after the data section
    vit_dir("st_trailing", safetensors(vit_tensors(), trailing=b"\x00" * 64))
    # junk after the header's JSON object (inside the header length): at its end, and before a '}'
    vit_dir("st_junk_in_header", safetensors(vit_tensors(), header_tail=b"   xyz"))
    vit_dir("st_junk_in_header_brace", safetensors(vit_tensors(), header_tail=b" x}"))
    # fractional offsets that the reader truncated
    vit_dir("st_fracoff_inrange", safetensors(vit_tensors(), raw_offsets={"cls_token": "[80.75,96.75]"}))
    # a gap between two tensors (the safetensors library refuses it too)
    end = sum(4 * numel(sh) for _, sh in vit_tensors())
    vit_dir("st_gap", safetensors(vit_tensors(), offsets={"cls_head.bias": (end - 4, end + 4)}, trailing=b"\x00" * 4))
    # a safetensors file cut in its data, and cut inside its header
    ok = safetensors(vit_tensors())
    vit_dir("st_truncated_data", ok[:len(ok) - 100])
    vit_dir("st_truncated_header", ok[:200])

    # -- llama2.c: layer counts, sniffing, truncation --
    # vocab 256 so that `eval` can run them with the bytes tokenizer
    write("llama2c_v0_122layers_tiny.bin", llama2c_v0(2, 2, 122, 1, 1, 256, 4))
    # n_layers 123 is byte '{' at offset 8: it was mistaken for safetensors
    write("llama2c_v0_123layers_tiny.bin", llama2c_v0(2, 2, 123, 1, 1, 256, 4))
    v0 = llama2c_v0(2, 2, 3, 1, 1, 256, 4)
    write("llama2c_v0_truncated.bin", v0[:len(v0) - 8])
    write("llama2c_v0_header_cut.bin", v0[:20])
    write("llama2c_v0_too_long.bin", v0 + b"\x00" * 4)
    write("ckpt_empty.bin", b"")
    # finite weights x 1e15: every tensor loads, but the activations overflow to Inf and the softmax to NaN
    hv = llama2c_v0(8, 8, 1, 2, 2, 256, 32)
    write("llama2c_huge_finite_weights.bin", hv[:28] + struct.pack("<%df" % ((len(hv) - 28) // 4),
          *[x * 1e15 for x in struct.unpack("<%df" % ((len(hv) - 28) // 4), hv[28:])]))
    # data.tsv's tokenizer-score rows: a plain tiny model (vocab 256) and llama2.c tokenizers of 256
    # records (<unk>, BOS, EOS, 253 byte pieces) whose every merge score is NaN, or +Inf (the finding:
    # tok512.bin so patched was accepted)
    write("llama2c_v0_tiny.bin", llama2c_v0(8, 8, 1, 2, 2, 256, 32))
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % i for i in range(253)]
    for name, score in (("tok_nan_scores.bin", float("nan")), ("tok_inf_scores.bin", float("inf"))):
        write(name, struct.pack("<i", max(map(len, pieces))) +
              b"".join(struct.pack("<fi", score, len(p)) + p for p in pieces))
    # -- Hugging Face folders (docs/formats.md#hugging-face-model-folders) --
    hf_llama_dir("hf_unknown_type", model_type="mamba")
    hf_llama_dir("hf_rope_yarn", rope_scaling={"rope_type": "yarn", "factor": 4.0})
    hf_llama_dir("hf_missing_shard", drop_shard2=True)
    hf_llama_dir("hf_truncated_shard", cut_shard2=24)
    hf_llama_dir("hf_index_escape", index_extra={"model.norm.weight": "../hf_unknown_type/model-00002-of-00002.safetensors"})
    hf_llama_dir("hf_index_stale", index_extra={"model.layers.1.mlp.up_proj.weight": "model-00002-of-00002.safetensors"})
    hf_llama_dir("hf_index_no_map", index_override={"metadata": {}})
    hf_llama_dir("hf_head_dim_huge", head_dim=1000000000, num_attention_heads=1000000000)
    # a Mistral window of 4 tokens: the default context (max_position_embeddings 16) is refused
    hf_llama_dir("hf_window", model_type="mistral", sliding_window=4)
    # text (the runner's eval rows read it with the bytes tokenizer)
    write("ckpt_eval.txt", b"one two three\n\nfour five six seven\n")
    write("ckpt_eval.ini", b"; tests/fuzz/regress/ckpt.tsv: eval rows (paths relative to this folder)\n"
          b"[model]\ntokenizer = bytes\n\n[data]\npath = ckpt_eval.txt\nmode = documents\n\n"
          b"[run]\nbatch = 2\n")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""hf_oracle.py: random-weight Hugging Face model folders and an independent PyTorch forward.

    /usr/bin/python3 hf_oracle.py make FAMILY VARIANT OUTDIR [--seed S]
    /usr/bin/python3 hf_oracle.py list
    /usr/bin/python3 hf_oracle.py seqs V MAXLEN OUT.txt [--lengths 1,5,17] [--seed S]
    /usr/bin/python3 hf_oracle.py pixels N CHANNELS SIZE OUT.u8 [--seed S]
    /usr/bin/python3 hf_oracle.py logits OUTDIR SEQS.txt OUT.f32
    /usr/bin/python3 hf_oracle.py logits-images OUTDIR PIXELS.u8 N OUT.f32
    /usr/bin/python3 hf_oracle.py compare A.f32 B.f32 [--tol 1e-4] [--label L]
    /usr/bin/python3 hf_oracle.py expand-kv SRC_DIR DST_DIR
    /usr/bin/python3 hf_oracle.py suite ROOT [--seed S]
    /usr/bin/python3 hf_oracle.py compare-suite ROOT RESULTS.tsv [--tol 1e-4]
    /usr/bin/python3 hf_oracle.py sensitivity ROOT [--tol 1e-4]
    /usr/bin/python3 hf_oracle.py selfcheck ROOT [--tol 1e-4]
    /usr/bin/python3 hf_oracle.py docs TEXT N OUT.json
    /usr/bin/python3 hf_oracle.py eval-check OUTDIR RESULTS.json --text TEXT | --ids IDS.txt
                                  [--limit N] [--context C] [--tol 1e-4]

`make` writes a small random-weight checkpoint folder in the exact layout `save_pretrained` gives
for that model_type: config.json with the keys transformers writes, the tensor names, shapes,
fused / interleaved layouts (GPT-2's Conv1D [in, out] c_attn, GPT-NeoX's per-head interleaved
query_key_value, ViT's conv patch kernel and [1, N+1, C] position table), F32, F16 or BF16
tensors, one `model.safetensors` or shards `model-0000k-of-0000n.safetensors` with
`model.safetensors.index.json`. Written here from the safetensors format (8 bytes little-endian
header length, a JSON header padded with spaces, the data), no safetensors package.

`logits` reads such a folder back from disk (its own safetensors / index reader; F16 and BF16
upcast exactly) and runs an independent float64 forward written from the Hugging Face
architecture definitions (modeling_gpt2.py, modeling_llama.py, modeling_mistral.py,
modeling_qwen2.py, modeling_qwen3.py, modeling_gpt_neox.py, modeling_vit.py): rotate_half RoPE,
llama3 frequency scaling, repeat_kv, Qwen3's per-head q/k RMSNorm before RoPE, NeoX's
rotary_ndims = head_size * rotary_pct and parallel residual, GPT-2's gelu_new, ViT's exact GELU
and pre-norm blocks. Nothing of pathens is read or reused. Output: for each sequence in order,
its (T, V) logits as float32 little-endian, concatenated; images: (N, n_classes).

SEQS.txt: one sequence per line, token ids separated by spaces. PIXELS.u8: N images, each
(channels, H, W) uint8.

`suite ROOT` makes every family/variant of VARIANTS under ROOT with its inputs and the oracle's
logits, the MHA expansions of the GQA variants (`expand-kv`: K/V rows repeated per query head),
and the broken folders the loader must refuse; it writes ROOT/suite.tsv (variant, family, kind,
folder, input, count, oracle logits, and the config key whose value pathens may refuse with exit 2
instead of honouring it: mistral's sliding_window below the context), ROOT/pairs.tsv (GQA variant, its MHA expansion) and
ROOT/broken.tsv for tests/cli_hf_models.sh. `selfcheck` is the oracle checking itself: every
deliberate bug of `sensitivity` must move its logits by more than 5 x tol on the suite's inputs,
and each GQA variant must equal its MHA expansion. `compare-suite` compares what that script's
runs wrote (RESULTS.tsv: variant, label, pathens output file), and the GQA / MHA pairs through
pathens, and prints the worst difference per family. `eval-check` compares `pathens eval` of a
folder with the oracle's NLL per token on the same documents: byte tokens of a text, or the ids a
JavaScript tokenizer gave the documents that `docs` cut (tests/cli_hf_llama3_eval.sh).

Exit 0: done / every comparison within tolerance; 1: a comparison failed; 2: bad usage or input.
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
# deliberate deviations of the forward (`sensitivity`): each is a plausible loader or kernel bug,
# and must move the oracle's own logits far beyond the tolerance on the suite's inputs
DEV = set()


class Bad(Exception):
    """bad usage or an unreadable / inconsistent input: exit 2"""


# ---- safetensors: writer and reader, from the format -------------------------------------------

ST_DTYPE = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}
TORCH_DTYPE_NAME = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def st_encode(t, dtype):
    """bytes of float64 tensor t stored as dtype, little-endian"""
    x = t.to(ST_DTYPE[dtype][0]).contiguous()
    if dtype == "BF16":
        x = x.view(torch.int16)
    a = x.numpy()
    return a.astype(a.dtype.newbyteorder("<")).tobytes()


def st_write(path, tensors, dtypes):
    """tensors: list of (name, float64 tensor); dtypes: name -> dtype. Header as the safetensors
    library writes it: __metadata__ first, tensors in name order, padded with spaces to 8 bytes."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, off = [], 0
    for name, t in sorted(tensors, key=lambda nt: nt[0]):
        b = st_encode(t, dtypes[name])
        header[name] = {"dtype": dtypes[name], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


def st_read(path):
    """name -> float64 tensor (exact upcast); refuses what the format forbids"""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise Bad(f"{path}: {len(buf)} bytes, shorter than the 8-byte header length")
    n = struct.unpack("<Q", buf[:8])[0]
    if 8 + n > len(buf):
        raise Bad(f"{path}: header length {n} past the end of the file ({len(buf)} bytes)")
    header = json.loads(buf[8:8 + n].decode())
    data = buf[8 + n:]
    out, spans = {}, []
    for name, e in header.items():
        if name == "__metadata__":
            continue
        tdt, size = ST_DTYPE.get(e["dtype"], (None, 0))
        if tdt is None:
            raise Bad(f"{path}: tensor {name}: dtype {e['dtype']} not F32/F16/BF16")
        b, end = e["data_offsets"]
        count = math.prod(e["shape"])
        if not 0 <= b <= end <= len(data) or end - b != count * size:
            raise Bad(f"{path}: tensor {name}: data_offsets {b}..{end} wrong for shape {e['shape']} "
                      f"{e['dtype']} in a {len(data)}-byte data section")
        raw = bytearray(data[b:end])
        if e["dtype"] == "BF16":
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if count else torch.zeros(0)
        else:
            t = torch.frombuffer(raw, dtype=tdt) if count else torch.zeros(0)
        out[name] = t.to(DT).reshape(e["shape"])
        spans.append((b, end))
    spans.sort()
    pos = 0
    for b, end in spans:
        if b != pos:
            raise Bad(f"{path}: tensors do not tile the data section (gap or overlap at byte {pos})")
        pos = end
    if pos != len(data):
        raise Bad(f"{path}: {len(data) - pos} bytes after the last tensor")
    return out


def folder_read(d):
    """config dict, name -> float64 tensor of a model folder (single file or index + shards)"""
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        W = {}
        for shard in sorted(set(wm.values())):
            part = st_read(os.path.join(d, shard))
            for name in part:
                if wm.get(name) != shard:
                    raise Bad(f"{d}/{shard}: tensor {name} is not mapped to this shard by the index")
            W.update(part)
        missing = set(wm) - set(W)
        if missing:
            raise Bad(f"{d}: index names tensors no shard holds: {sorted(missing)[:3]}")
    else:
        W = st_read(os.path.join(d, "model.safetensors"))
    return cfg, W


# ---- the families: config.json as transformers writes it, and the tensors it implies -----------
# Variant parameters: small models (hidden 48..64, 2 layers, a few hundred tokens) whose every
# switch differs from the defaults where the issue asks for it.

VARIANTS = {
    # name: (family, dict of parameters)
    "gpt2-base": ("gpt2", dict(C=48, L=2, NH=4, V=300, P=64, dtype="F32", shards=1, prefix=True)),
    "gpt2-hub": ("gpt2", dict(C=48, L=2, NH=4, V=256, P=96, dtype="F32", shards=1, prefix=False,
                              buffers=True)),
    "gpt2-untied": ("gpt2", dict(C=32, L=2, NH=2, V=280, P=64, dtype="F16", shards=2, prefix=True,
                                 tied=False, n_inner=80, act="gelu")),
    "llama-gqa": ("llama", dict(C=64, L=2, NH=4, NKV=2, hd=24, I=96, V=320, P=128, dtype="F32", shards=1,
                                tied=False, theta=10000.0,
                                scaling=dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                             original_max_position_embeddings=64, rope_type="llama3"))),
    "llama-tied-bias": ("llama", dict(C=64, L=2, NH=4, NKV=1, hd=None, I=112, V=300, P=128, dtype="BF16",
                                      shards=2, tied=True, bias=True, theta=500000.0, scaling=None)),
    "llama-mha": ("llama", dict(C=48, L=2, NH=3, NKV=3, hd=16, I=80, V=260, P=64, dtype="F16", shards=1,
                                tied=False, theta=10000.0,
                                scaling=dict(factor=4.0, low_freq_factor=2.0, high_freq_factor=8.0,
                                             original_max_position_embeddings=128, rope_type="llama3"))),
    "mistral-base": ("mistral", dict(C=64, L=2, NH=4, NKV=2, hd=16, I=96, V=320, P=128, dtype="BF16", shards=1,
                                     tied=False, theta=1000000.0, window=4096)),
    "mistral-window": ("mistral", dict(C=64, L=2, NH=4, NKV=2, hd=16, I=96, V=320, P=128, dtype="F32",
                                       shards=1, tied=False, theta=10000.0, window=8,
                                       refusable="sliding_window")),
    "qwen2-base": ("qwen2", dict(C=64, L=2, NH=4, NKV=2, I=128, V=300, P=128, dtype="F32", shards=2,
                                 tied=True, theta=1000000.0)),
    "qwen2-untied": ("qwen2", dict(C=48, L=2, NH=6, NKV=2, I=64, V=290, P=64, dtype="BF16", shards=1,
                                   tied=False, theta=10000.0, window=4)),  # unused: use_sliding_window false
    "qwen3-base": ("qwen3", dict(C=64, L=2, NH=4, NKV=2, hd=24, I=96, V=310, P=128, dtype="BF16", shards=1,
                                 tied=False, theta=1000000.0)),
    "qwen3-tied-bias": ("qwen3", dict(C=48, L=2, NH=4, NKV=4, hd=16, I=64, V=300, P=64, dtype="F32", shards=2,
                                      tied=True, bias=True, theta=10000.0)),
    "gpt_neox-parallel": ("gpt_neox", dict(C=64, L=2, NH=4, I=256, V=320, P=128, dtype="F16", shards=1,
                                           rotary_pct=0.25, parallel=True)),
    "gpt_neox-sequential": ("gpt_neox", dict(C=64, L=2, NH=2, I=128, V=300, P=128, dtype="F32", shards=2,
                                             rotary_pct=0.5, parallel=False)),
    # the real Llama 3 vocabulary (128,256 ids, tokenizer.json copied beside it by
    # tests/cli_hf_llama3_eval.sh), Llama 3.2's rope settings; not in the suite (80 MB of float64)
    "llama-vocab128k": ("llama", dict(C=64, L=2, NH=4, NKV=2, hd=16, I=128, V=128256, P=512, dtype="BF16",
                                      shards=2, tied=True, theta=500000.0, bos=128000, eos=128001, suite=False,
                                      scaling=dict(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                                   original_max_position_embeddings=8192, rope_type="llama3"))),
    "vit-base": ("vit", dict(C=48, L=2, NH=4, I=256, image=32, patch=8, ch=3, NC=10, dtype="F32", shards=1)),
    "vit-gray": ("vit", dict(C=32, L=2, NH=2, I=64, image=28, patch=7, ch=1, NC=10, dtype="BF16", shards=2,
                             mean=[0.286], std=[0.353])),
    # DeiT (facebook/deit-*-patch16-224: model_type vit, the same tensor names) normalises with
    # ImageNet's per-channel mean and std
    "vit-deit": ("vit", dict(C=48, L=2, NH=3, I=96, image=32, patch=16, ch=3, NC=10, dtype="F32", shards=1,
                             mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])),
}

# sequence lengths of the token variants (each at most the variant's positions P)
SEQ_LENGTHS = (1, 5, 17, 40, 64)
N_IMAGES = 32


def cfg_gpt2(p):
    return {
        "activation_function": p.get("act", "gelu_new"),
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": p["V"] - 1,
        "embd_pdrop": 0.1,
        "eos_token_id": p["V"] - 1,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": p["P"],
        "n_embd": p["C"],
        "n_head": p["NH"],
        "n_inner": p.get("n_inner"),
        "n_layer": p["L"],
        "n_positions": p["P"],
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "tie_word_embeddings": p.get("tied", True),
        "torch_dtype": TORCH_DTYPE_NAME[p["dtype"]],
        "transformers_version": "4.44.2",
        "use_cache": True,
        "vocab_size": p["V"],
    }


def cfg_llama_like(family, p):
    arch = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
            "qwen3": "Qwen3ForCausalLM"}[family]
    c = {
        "architectures": [arch],
        "attention_dropout": 0.0,
        "bos_token_id": p.get("bos", 1),
        "eos_token_id": p.get("eos", 2),
        "hidden_act": "silu",
        "hidden_size": p["C"],
        "initializer_range": 0.02,
        "intermediate_size": p["I"],
        "max_position_embeddings": p["P"],
        "model_type": family,
        "num_attention_heads": p["NH"],
        "num_hidden_layers": p["L"],
        "num_key_value_heads": p["NKV"],
        "rms_norm_eps": 1e-05 if family in ("llama", "mistral") else 1e-06,
        "rope_theta": p["theta"],
        "tie_word_embeddings": p["tied"],
        "torch_dtype": TORCH_DTYPE_NAME[p["dtype"]],
        "transformers_version": "4.51.3",
        "use_cache": True,
        "vocab_size": p["V"],
    }
    if family == "llama":
        c.update({"attention_bias": p.get("bias", False), "mlp_bias": False, "pretraining_tp": 1,
                  "rope_scaling": p["scaling"]})
        if p.get("hd"):
            c["head_dim"] = p["hd"]
    elif family == "mistral":
        c.update({"head_dim": p["hd"], "sliding_window": p["window"]})
    elif family == "qwen2":
        c.update({"max_window_layers": p["L"], "rope_scaling": None, "sliding_window": p.get("window", p["P"]),
                  "use_sliding_window": False})
    else:  # qwen3
        c.update({"attention_bias": p.get("bias", False), "head_dim": p["hd"], "max_window_layers": p["L"],
                  "rope_scaling": None, "sliding_window": None, "use_sliding_window": False})
    return dict(sorted(c.items()))


def cfg_gpt_neox(p):
    return {
        "architectures": ["GPTNeoXForCausalLM"],
        "attention_bias": True,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "classifier_dropout": 0.1,
        "eos_token_id": 0,
        "hidden_act": "gelu",
        "hidden_dropout": 0.0,
        "hidden_size": p["C"],
        "initializer_range": 0.02,
        "intermediate_size": p["I"],
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": p["P"],
        "model_type": "gpt_neox",
        "num_attention_heads": p["NH"],
        "num_hidden_layers": p["L"],
        "rope_scaling": None,
        "rotary_emb_base": 10000,
        "rotary_pct": p["rotary_pct"],
        "tie_word_embeddings": False,
        "torch_dtype": TORCH_DTYPE_NAME[p["dtype"]],
        "transformers_version": "4.44.2",
        "use_cache": True,
        "use_parallel_residual": p["parallel"],
        "vocab_size": p["V"],
    }


def cfg_vit(p):
    labels = [f"LABEL_{i}" for i in range(p["NC"])]
    return {
        "architectures": ["ViTForImageClassification"],
        "attention_probs_dropout_prob": 0.0,
        "encoder_stride": p["patch"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "hidden_size": p["C"],
        "id2label": {str(i): s for i, s in enumerate(labels)},
        "image_size": p["image"],
        "initializer_range": 0.02,
        "intermediate_size": p["I"],
        "label2id": {s: i for i, s in enumerate(labels)},
        "layer_norm_eps": 1e-12,
        "model_type": "vit",
        "num_attention_heads": p["NH"],
        "num_channels": p["ch"],
        "num_hidden_layers": p["L"],
        "patch_size": p["patch"],
        "qkv_bias": True,
        "torch_dtype": TORCH_DTYPE_NAME[p["dtype"]],
        "transformers_version": "4.44.2",
    }


def vit_preprocessor(p):
    return {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": p.get("mean", [0.5] * p["ch"]),
        "image_processor_type": "ViTImageProcessor",
        "image_std": p.get("std", [0.5] * p["ch"]),
        "resample": 2,
        "rescale_factor": 0.00392156862745098,
        "size": {"height": p["image"], "width": p["image"]},
    }


def make_config(family, p):
    if family == "gpt2":
        return cfg_gpt2(p)
    if family == "gpt_neox":
        return cfg_gpt_neox(p)
    if family == "vit":
        return cfg_vit(p)
    return cfg_llama_like(family, p)


def kv_heads(cfg):
    return cfg.get("num_key_value_heads") or cfg["num_attention_heads"]


def head_dim(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def family_tensors(cfg, gpt2_prefix=None, gpt2_buffers=False):
    """the state dict save_pretrained writes for this config, in module order:
    list of (name, shape, kind); kind picks the initialisation (emb, w, norm, bias, pos, cls, buf)"""
    fam = cfg.get("model_type")
    T = []
    if fam == "gpt2":
        C, L, V, P = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"], cfg["n_positions"]
        HID = cfg.get("n_inner") or 4 * C
        pre = "transformer." if gpt2_prefix else ""
        T += [(pre + "wte.weight", [V, C], "emb"), (pre + "wpe.weight", [P, C], "pos")]
        for l in range(L):
            h = f"{pre}h.{l}."
            T += [(h + "ln_1.weight", [C], "norm"), (h + "ln_1.bias", [C], "bias")]
            if gpt2_buffers:
                T += [(h + "attn.bias", [1, 1, P, P], "buf")]
            T += [(h + "attn.c_attn.weight", [C, 3 * C], "w"), (h + "attn.c_attn.bias", [3 * C], "bias"),
                  (h + "attn.c_proj.weight", [C, C], "w"), (h + "attn.c_proj.bias", [C], "bias"),
                  (h + "ln_2.weight", [C], "norm"), (h + "ln_2.bias", [C], "bias"),
                  (h + "mlp.c_fc.weight", [C, HID], "w"), (h + "mlp.c_fc.bias", [HID], "bias"),
                  (h + "mlp.c_proj.weight", [HID, C], "w"), (h + "mlp.c_proj.bias", [C], "bias")]
        T += [(pre + "ln_f.weight", [C], "norm"), (pre + "ln_f.bias", [C], "bias")]
        if not cfg.get("tie_word_embeddings", True):
            T += [("lm_head.weight", [V, C], "w")]
    elif fam in ("llama", "mistral", "qwen2", "qwen3"):
        C, L, V, I = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"], cfg["intermediate_size"]
        NH, NKV, hd = cfg["num_attention_heads"], kv_heads(cfg), head_dim(cfg)
        qkv_bias = {"llama": cfg.get("attention_bias", False), "mistral": False, "qwen2": True,
                    "qwen3": cfg.get("attention_bias", False)}[fam]
        o_bias = cfg.get("attention_bias", False) if fam in ("llama", "qwen3") else False
        mlp_bias = cfg.get("mlp_bias", False) if fam == "llama" else False
        T += [("model.embed_tokens.weight", [V, C], "emb")]
        for l in range(L):
            h = f"model.layers.{l}."
            T += [(h + "input_layernorm.weight", [C], "norm")]
            for n, rows in (("q", NH * hd), ("k", NKV * hd), ("v", NKV * hd)):
                T += [(h + f"self_attn.{n}_proj.weight", [rows, C], "w")]
                if qkv_bias:
                    T += [(h + f"self_attn.{n}_proj.bias", [rows], "bias")]
            T += [(h + "self_attn.o_proj.weight", [C, NH * hd], "w")]
            if o_bias:
                T += [(h + "self_attn.o_proj.bias", [C], "bias")]
            if fam == "qwen3":
                T += [(h + "self_attn.q_norm.weight", [hd], "norm"), (h + "self_attn.k_norm.weight", [hd], "norm")]
            T += [(h + "post_attention_layernorm.weight", [C], "norm")]
            for n, shp in (("gate", [I, C]), ("up", [I, C]), ("down", [C, I])):
                T += [(h + f"mlp.{n}_proj.weight", shp, "w")]
                if mlp_bias:
                    T += [(h + f"mlp.{n}_proj.bias", [shp[0]], "bias")]
        T += [("model.norm.weight", [C], "norm")]
        if not cfg.get("tie_word_embeddings", False):
            T += [("lm_head.weight", [V, C], "w")]
    elif fam == "gpt_neox":
        C, L, V, I = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"], cfg["intermediate_size"]
        bias = cfg.get("attention_bias", True)
        T += [("gpt_neox.embed_in.weight", [V, C], "emb")]
        for l in range(L):
            h = f"gpt_neox.layers.{l}."
            T += [(h + "input_layernorm.weight", [C], "norm"), (h + "input_layernorm.bias", [C], "bias"),
                  (h + "post_attention_layernorm.weight", [C], "norm"),
                  (h + "post_attention_layernorm.bias", [C], "bias"),
                  (h + "attention.query_key_value.weight", [3 * C, C], "w")]
            if bias:
                T += [(h + "attention.query_key_value.bias", [3 * C], "bias")]
            T += [(h + "attention.dense.weight", [C, C], "w")]
            if bias:
                T += [(h + "attention.dense.bias", [C], "bias")]
            T += [(h + "mlp.dense_h_to_4h.weight", [I, C], "w"), (h + "mlp.dense_h_to_4h.bias", [I], "bias"),
                  (h + "mlp.dense_4h_to_h.weight", [C, I], "w"), (h + "mlp.dense_4h_to_h.bias", [C], "bias")]
        T += [("gpt_neox.final_layer_norm.weight", [C], "norm"), ("gpt_neox.final_layer_norm.bias", [C], "bias")]
        if cfg.get("tie_word_embeddings", False):
            raise Bad("gpt_neox with tie_word_embeddings = true is not generated here")
        T += [("embed_out.weight", [V, C], "w")]
    elif fam == "vit":
        C, L, I = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
        P, S, ch = cfg["patch_size"], cfg["image_size"], cfg["num_channels"]
        NC = len(cfg["id2label"])
        npatch = (S // P) ** 2
        e = "vit.embeddings."
        T += [(e + "cls_token", [1, 1, C], "cls"), (e + "position_embeddings", [1, npatch + 1, C], "pos"),
              (e + "patch_embeddings.projection.weight", [C, ch, P, P], "w"),
              (e + "patch_embeddings.projection.bias", [C], "bias")]
        for l in range(L):
            h = f"vit.encoder.layer.{l}."
            for n in ("query", "key", "value"):
                T += [(h + f"attention.attention.{n}.weight", [C, C], "w"),
                      (h + f"attention.attention.{n}.bias", [C], "bias")]
            T += [(h + "attention.output.dense.weight", [C, C], "w"), (h + "attention.output.dense.bias", [C], "bias"),
                  (h + "intermediate.dense.weight", [I, C], "w"), (h + "intermediate.dense.bias", [I], "bias"),
                  (h + "output.dense.weight", [C, I], "w"), (h + "output.dense.bias", [C], "bias"),
                  (h + "layernorm_before.weight", [C], "norm"), (h + "layernorm_before.bias", [C], "bias"),
                  (h + "layernorm_after.weight", [C], "norm"), (h + "layernorm_after.bias", [C], "bias")]
        T += [("vit.layernorm.weight", [C], "norm"), ("vit.layernorm.bias", [C], "bias"),
              ("classifier.weight", [NC, C], "w"), ("classifier.bias", [NC], "bias")]
    else:
        raise Bad(f"model_type {fam!r}: the oracle knows gpt2, llama, mistral, qwen2, qwen3, gpt_neox, vit")
    return T


# std of each kind of tensor: large enough that a wrong layout, scale or switch moves the logits
# far beyond 1e-4, small enough that softmaxes are not saturated
INIT_STD = {"emb": 0.5, "w": 0.15, "bias": 0.1, "pos": 0.2, "cls": 0.5}


def draw(shape, kind, gen, P=None):
    if kind == "norm":
        return 1.0 + 0.2 * torch.randn(shape, generator=gen, dtype=DT)
    if kind == "buf":  # GPT-2's causal-mask buffer: lower triangle of ones
        return torch.tril(torch.ones(shape[-2:], dtype=DT)).reshape(shape)
    return INIT_STD[kind] * torch.randn(shape, generator=gen, dtype=DT)


def make_folder(name, outdir, seed=1):
    if name not in VARIANTS:
        raise Bad(f"unknown variant {name!r}; `list` prints them")
    family, p = VARIANTS[name]
    cfg = make_config(family, p)
    gen = torch.Generator().manual_seed(seed * 1000003 + sum(map(ord, name)))
    spec = family_tensors(cfg, gpt2_prefix=p.get("prefix"), gpt2_buffers=p.get("buffers", False))
    tensors = [(n, draw(shape, kind, gen)) for n, shape, kind in spec]
    dtypes = {n: ("F32" if kind == "buf" else p["dtype"]) for n, shape, kind in spec}
    os.makedirs(outdir, exist_ok=True)
    for f in os.listdir(outdir):
        if f.endswith(".safetensors") or f.endswith(".json"):
            os.remove(os.path.join(outdir, f))
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    if family == "vit":
        with open(os.path.join(outdir, "preprocessor_config.json"), "w") as f:
            json.dump(vit_preprocessor(p), f, indent=2)
            f.write("\n")
    write_weights(outdir, tensors, dtypes, p["shards"])
    return family, p


def write_weights(outdir, tensors, dtypes, shards):
    if shards == 1:
        st_write(os.path.join(outdir, "model.safetensors"), tensors, dtypes)
        return
    # fill shards in state-dict order up to an even share of the bytes, as save_pretrained does
    sizes = [t.numel() * ST_DTYPE[dtypes[n]][1] for n, t in tensors]
    share = sum(sizes) / shards
    parts, acc = [[]], 0
    for (n, t), s in zip(tensors, sizes):
        if acc >= share * len(parts) and len(parts) < shards:
            parts.append([])
        parts[-1].append((n, t))
        acc += s
    if len(parts) != shards:
        raise Bad(f"{outdir}: {len(tensors)} tensors do not fill {shards} shards")
    wm, total = {}, 0
    for k, part in enumerate(parts):
        fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        total += st_write(os.path.join(outdir, fname), part, dtypes)
        for n, _ in part:
            wm[n] = fname
    with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))}, f, indent=2)
        f.write("\n")


# ---- the forward passes (float64), from the Hugging Face modeling files ------------------------

def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):  # LlamaRMSNorm / Qwen3RMSNorm
    return w * (x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps))


def gelu_new(x):  # GPT-2's NewGELUActivation
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_exact(x):  # GELUActivation: x * Phi(x)
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def act_fn(name):
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return gelu_exact if "gelu-exact" in DEV else gelu_new
    if name == "gelu":
        return gelu_new if "gelu-tanh" in DEV else gelu_exact
    if name == "silu":
        return lambda x: x * torch.sigmoid(x)
    raise Bad(f"activation {name!r} not implemented by the oracle")


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


def rope_inv_freq(dim, base, scaling=None):
    """_compute_default_rope_parameters, and _compute_llama3_parameters when rope_type is llama3"""
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=DT) / dim))
    if not scaling or "no-llama3-scaling" in DEV:
        return inv
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "default":
        return inv
    if kind != "llama3":
        raise Bad(f"rope_scaling type {kind!r} not implemented by the oracle")
    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old = scaling["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, inv_l)


def rope_cos_sin(T, inv_freq):
    freqs = torch.arange(T, dtype=DT)[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], -1)  # (T, dim)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):  # x (H, T, dim)
    if "rope-interleaved" in DEV:  # GPT-J / llama2.c pairs (2i, 2i+1) instead of halves
        h = x.shape[-1] // 2
        c, s = cos[..., :h].repeat_interleave(2, -1), sin[..., :h].repeat_interleave(2, -1)
        r = torch.stack([-x[..., 1::2], x[..., 0::2]], -1).flatten(-2)
        return x * c + r * s
    return x * cos + rotate_half(x) * sin


def attend(q, k, v, scale, causal=True, window=None):
    """q (H, T, d), k (H, T, d), v (H, T, dv) -> (H, T, dv): softmax(q k^T * scale + mask) v"""
    s = (q @ k.transpose(-1, -2)) * scale
    if causal:
        T = q.shape[-2]
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        allowed = j <= i
        if window is not None and "no-window" not in DEV:
            allowed = allowed & (i - j < window)  # Mistral: a key more than window-1 back is masked
        s = s.masked_fill(~allowed, float("-inf"))
    return torch.softmax(s, -1) @ v


def lin(x, W, name, bias=None):
    """nn.Linear: x W^T (+ b); bias: True = must exist, False = must not, None = as the file has"""
    y = x @ W[name + ".weight"].T
    if bias or (bias is None and name + ".bias" in W):
        y = y + W[name + ".bias"]
    return y


def split_heads(x, H):  # (T, H*d) -> (H, T, d)
    T = x.shape[0]
    return x.reshape(T, H, -1).transpose(0, 1)


def merge_heads(x):  # (H, T, d) -> (T, H*d)
    H, T, d = x.shape
    return x.transpose(0, 1).reshape(T, H * d)


def forward_gpt2(cfg, W, ids):
    pre = "transformer." if "transformer.wte.weight" in W else ""
    if not cfg.get("scale_attn_weights", True) or cfg.get("scale_attn_by_inverse_layer_idx") \
            or cfg.get("reorder_and_upcast_attn"):
        raise Bad("gpt2 attention switches other than the defaults are not implemented by the oracle")
    C, NH, eps = cfg["n_embd"], cfg["n_head"], cfg.get("layer_norm_epsilon", 1e-5)
    act = act_fn(cfg.get("activation_function", "gelu_new"))
    T = len(ids)
    x = W[pre + "wte.weight"][ids] + W[pre + "wpe.weight"][:T]
    for l in range(cfg["n_layer"]):
        h = f"{pre}h.{l}."
        a = layer_norm(x, W[h + "ln_1.weight"], W[h + "ln_1.bias"], eps)
        qkv = a @ W[h + "attn.c_attn.weight"] + W[h + "attn.c_attn.bias"]  # Conv1D: x W + b, W [C, 3C]
        q, k, v = (split_heads(t, NH) for t in qkv.split(C, -1))
        o = attend(q, k, v, 1.0 / math.sqrt(C // NH))
        wo = W[h + "attn.c_proj.weight"]
        x = x + merge_heads(o) @ (wo.T if "c-proj-transposed" in DEV else wo) + W[h + "attn.c_proj.bias"]
        m = layer_norm(x, W[h + "ln_2.weight"], W[h + "ln_2.bias"], eps)
        m = act(m @ W[h + "mlp.c_fc.weight"] + W[h + "mlp.c_fc.bias"])
        x = x + m @ W[h + "mlp.c_proj.weight"] + W[h + "mlp.c_proj.bias"]
    x = layer_norm(x, W[pre + "ln_f.weight"], W[pre + "ln_f.bias"], eps)
    head = W["lm_head.weight"] if "lm_head.weight" in W else W[pre + "wte.weight"]
    return x @ head.T


def forward_llama(cfg, W, ids):
    """LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM"""
    fam = cfg["model_type"]
    NH, NKV, hd = cfg["num_attention_heads"], kv_heads(cfg), head_dim(cfg)
    eps = cfg["rms_norm_eps"]
    act = act_fn(cfg.get("hidden_act", "silu"))
    window = None
    if fam == "mistral" and cfg.get("sliding_window") is not None:
        window = cfg["sliding_window"]
    if fam in ("qwen2", "qwen3") and cfg.get("use_sliding_window"):
        raise Bad("qwen use_sliding_window = true is not implemented by the oracle")
    if fam in ("qwen2", "qwen3") and "unused-window" in DEV:  # sliding_window honoured though switched off
        window = cfg.get("sliding_window")
    scaling = cfg.get("rope_scaling") if fam == "llama" else None
    if fam != "llama" and cfg.get("rope_scaling"):
        raise Bad(f"{fam} rope_scaling is not implemented by the oracle")
    T = len(ids)
    cos, sin = rope_cos_sin(T, rope_inv_freq(hd, cfg.get("rope_theta", 10000.0), scaling))
    x = W["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        h = f"model.layers.{l}."
        a = rms_norm(x, W[h + "input_layernorm.weight"], eps)
        qb = False if "no-qkv-bias" in DEV else None
        q = split_heads(lin(a, W, h + "self_attn.q_proj", qb), NH)  # (NH, T, hd)
        k = split_heads(lin(a, W, h + "self_attn.k_proj", qb), NKV)  # (NKV, T, hd)
        v = split_heads(lin(a, W, h + "self_attn.v_proj", qb), NKV)
        if fam == "qwen3" and "no-qk-norm" not in DEV:  # per-head RMSNorm over head_dim, before RoPE
            q = rms_norm(q, W[h + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[h + "self_attn.k_norm.weight"], eps)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        rep = NH // NKV  # repeat_kv: query head i reads kv head i // rep
        if "kv-modulo" in DEV:  # query head i reading kv head i % NKV
            k, v = k.repeat(rep, 1, 1), v.repeat(rep, 1, 1)
        else:
            k = k[:, None].expand(NKV, rep, T, hd).reshape(NH, T, hd)
            v = v[:, None].expand(NKV, rep, T, hd).reshape(NH, T, hd)
        o = attend(q, k, v, hd ** -0.5, window=window)
        x = x + lin(merge_heads(o), W, h + "self_attn.o_proj")
        m = rms_norm(x, W[h + "post_attention_layernorm.weight"], eps)
        x = x + lin(act(lin(m, W, h + "mlp.gate_proj")) * lin(m, W, h + "mlp.up_proj"), W, h + "mlp.down_proj")
    x = rms_norm(x, W["model.norm.weight"], eps)
    tied = cfg.get("tie_word_embeddings") != ("flip-tie" in DEV)
    head = W["model.embed_tokens.weight"] if tied else W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return x @ head.T


def forward_gpt_neox(cfg, W, ids):
    C, NH, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg.get("layer_norm_eps", 1e-5)
    hd = C // NH
    rot = hd if "full-rotary" in DEV else int(hd * cfg.get("rotary_pct", 1.0))  # rotary_ndims
    base = cfg.get("rotary_emb_base", cfg.get("rope_theta", 10000))
    if cfg.get("rope_scaling"):
        raise Bad("gpt_neox rope_scaling is not implemented by the oracle")
    act = act_fn(cfg.get("hidden_act", "gelu"))
    T = len(ids)
    cos, sin = rope_cos_sin(T, rope_inv_freq(rot, base))
    x = W["gpt_neox.embed_in.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        h = f"gpt_neox.layers.{l}."
        a = layer_norm(x, W[h + "input_layernorm.weight"], W[h + "input_layernorm.bias"], eps)
        qkv = lin(a, W, h + "attention.query_key_value")  # (T, 3C), per head [q_h | k_h | v_h]
        if "qkv-blocked" in DEV:  # [q | k | v] blocks of C rows, as GPT-2's c_attn
            q, k, v = (split_heads(t, NH) for t in qkv.split(C, -1))
        else:
            qkv = qkv.reshape(T, NH, 3 * hd).transpose(0, 1)  # (NH, T, 3 hd)
            q, k, v = qkv[..., :hd], qkv[..., hd:2 * hd], qkv[..., 2 * hd:]
        q = torch.cat([apply_rope(q[..., :rot], cos, sin), q[..., rot:]], -1)
        k = torch.cat([apply_rope(k[..., :rot], cos, sin), k[..., rot:]], -1)
        o = attend(q, k, v, 1.0 / math.sqrt(hd))
        attn = lin(merge_heads(o), W, h + "attention.dense")

        def mlp(y):
            return lin(act(lin(y, W, h + "mlp.dense_h_to_4h")), W, h + "mlp.dense_4h_to_h")

        ln2 = (W[h + "post_attention_layernorm.weight"], W[h + "post_attention_layernorm.bias"], eps)
        if cfg.get("use_parallel_residual", True) != ("flip-parallel" in DEV):  # x + attn(ln1(x)) + mlp(ln2(x))
            x = x + attn + mlp(layer_norm(x, *ln2))
        else:
            x = x + attn
            x = x + mlp(layer_norm(x, *ln2))
    x = layer_norm(x, W["gpt_neox.final_layer_norm.weight"], W["gpt_neox.final_layer_norm.bias"], eps)
    return x @ W["embed_out.weight"].T


def vit_norm_params(d, cfg):
    """image_mean / image_std / rescale_factor of preprocessor_config.json (ViTImageProcessor
    defaults when absent: 0.5, 0.5, 1/255)"""
    ch = cfg["num_channels"]
    pp = {}
    path = os.path.join(d, "preprocessor_config.json")
    if os.path.exists(path):
        with open(path) as f:
            pp = json.load(f)
    mean = torch.tensor(pp.get("image_mean", [0.5] * ch), dtype=DT)
    std = torch.tensor(pp.get("image_std", [0.5] * ch), dtype=DT)
    return mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1), pp.get("rescale_factor", 1 / 255)


def forward_vit(cfg, W, pixels, d):
    """ViTForImageClassification; pixels (N, ch, S, S) uint8 -> (N, n_classes)"""
    C, NH, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg.get("layer_norm_eps", 1e-12)
    hd = C // NH
    act = act_fn(cfg.get("hidden_act", "gelu"))
    mean, std, rescale = vit_norm_params(d, cfg)
    if "pixels-01" in DEV:  # x / 255 without the processor's mean / std
        mean, std = 0.0, 1.0
    if "pixels-default" in DEV:  # preprocessor_config.json ignored: ViTImageProcessor's 0.5, 0.5
        mean, std = 0.5, 0.5
    if "pixels-channel0" in DEV:  # channel 0's mean and std for every channel
        mean, std = mean[0], std[0]
    x = (pixels.to(DT) * rescale - mean) / std
    e = "vit.embeddings."
    p = F.conv2d(x, W[e + "patch_embeddings.projection.weight"], W[e + "patch_embeddings.projection.bias"],
                 stride=cfg["patch_size"])  # (N, C, S/P, S/P)
    if "patches-colmajor" in DEV:
        p = p.transpose(2, 3)
    p = p.flatten(2).transpose(1, 2)  # (N, patches, C), row-major patch order
    N = p.shape[0]
    x = torch.cat([W[e + "cls_token"].expand(N, 1, C), p], 1) + W[e + "position_embeddings"]
    out = []
    for n in range(N):
        y = x[n]  # (1 + patches, C)
        for l in range(cfg["num_hidden_layers"]):
            h = f"vit.encoder.layer.{l}."
            a = layer_norm(y, W[h + "layernorm_before.weight"], W[h + "layernorm_before.bias"], eps)
            q, k, v = (split_heads(lin(a, W, h + f"attention.attention.{t}"), NH) for t in ("query", "key", "value"))
            o = attend(q, k, v, 1.0 / math.sqrt(hd), causal=False)
            y = y + lin(merge_heads(o), W, h + "attention.output.dense")
            m = layer_norm(y, W[h + "layernorm_after.weight"], W[h + "layernorm_after.bias"], eps)
            y = y + lin(act(lin(m, W, h + "intermediate.dense")), W, h + "output.dense")
        y = layer_norm(y, W["vit.layernorm.weight"], W["vit.layernorm.bias"], eps)
        out.append(lin(y[0], W, "classifier"))
    return torch.stack(out)


def load_checked(d):
    """read a folder and check its tensors are exactly what its config implies (names, shapes)"""
    cfg, W = folder_read(d)
    fam = cfg.get("model_type")
    prefix = "transformer.wte.weight" in W
    buffers = any(n.endswith(".attn.bias") for n in W)
    want = {n: s for n, s, _ in family_tensors(cfg, gpt2_prefix=prefix, gpt2_buffers=buffers)}
    got = {n: list(t.shape) for n, t in W.items()}
    if want != got:
        diff = sorted(set(want) ^ set(got)) or [n for n in want if want[n] != got[n]]
        raise Bad(f"{d}: tensors differ from what config.json implies for {fam}: {diff[:4]}")
    return cfg, W, fam


def read_seqs(path):
    seqs = []
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            if line.strip():
                seqs.append([int(t) for t in line.split()])
    if not seqs:
        raise Bad(f"{path}: no sequences")
    return seqs


def write_f32(path, tensors):
    with open(path, "wb") as f:
        for t in tensors:
            a = t.to(torch.float32).contiguous().numpy()
            f.write(a.astype("<f4").tobytes())


def logits_tokens(d, seqs):
    cfg, W, fam = load_checked(d)
    fwd = {"gpt2": forward_gpt2, "llama": forward_llama, "mistral": forward_llama, "qwen2": forward_llama,
           "qwen3": forward_llama, "gpt_neox": forward_gpt_neox}.get(fam)
    if fwd is None:
        raise Bad(f"{d}: model_type {fam!r} does not take token input")
    V = W["lm_head.weight"].shape[0] if "lm_head.weight" in W else cfg["vocab_size"]
    out = []
    for s in seqs:
        if any(not 0 <= t < V for t in s):
            raise Bad(f"{d}: a token id outside [0, {V})")
        out.append(fwd(cfg, W, torch.tensor(s, dtype=torch.long)))
    return out


def read_pixels(path, N, cfg):
    ch, S = cfg["num_channels"], cfg["image_size"]
    with open(path, "rb") as f:
        b = f.read()
    if len(b) != N * ch * S * S:
        raise Bad(f"{path}: {len(b)} bytes, expected {N} x {ch} x {S} x {S}")
    return torch.frombuffer(bytearray(b), dtype=torch.uint8).reshape(N, ch, S, S)


def logits_images(d, pixels_path, N):
    cfg, W, fam = load_checked(d)
    if fam != "vit":
        raise Bad(f"{d}: model_type {fam!r} does not take images")
    return forward_vit(cfg, W, read_pixels(pixels_path, N, cfg), d)


# ---- inputs, comparison -------------------------------------------------------------------------

def make_seqs(V, maxlen, lengths, gen):
    return [torch.randint(0, V, (min(n, maxlen),), generator=gen).tolist() for n in lengths]


def write_seqs(path, seqs):
    with open(path, "w") as f:
        for s in seqs:
            f.write(" ".join(map(str, s)) + "\n")


def read_f32(path):
    with open(path, "rb") as f:
        b = f.read()
    if len(b) % 4:
        raise Bad(f"{path}: {len(b)} bytes, not a whole number of float32")
    return torch.frombuffer(bytearray(b), dtype=torch.float32).to(DT)


def compare(a_path, b_path):
    """max |a - b| (inf when the sizes differ or a value is not finite), and the element count"""
    a, b = read_f32(a_path), read_f32(b_path)
    if a.numel() != b.numel():
        print(f"  {a_path}: {a.numel()} floats, {b_path}: {b.numel()} floats")
        return math.inf, max(a.numel(), b.numel())
    if a.numel() == 0:
        return math.inf, 0
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return math.inf, a.numel()
    return (a - b).abs().max().item(), a.numel()


# ---- the suite of tests/cli_hf_models.sh ----------------------------------------------------------

# broken folders: (name, base variant, what is broken, the words pathens' message must contain;
# "|" separates alternatives)
BROKEN = [
    ("unknown-type", "llama-gqa", "config.json model_type = mamba", "mamba", "config.json"),
    ("missing-tensor", "llama-gqa", "model.layers.1.mlp.up_proj.weight dropped",
     "model.layers.1.mlp.up_proj.weight", "model.safetensors"),
    ("extra-tensor", "llama-gqa", "model.layers.0.mlp.extra_proj.weight added",
     "model.layers.0.mlp.extra_proj.weight", "model.safetensors"),
    ("wrong-shape", "llama-gqa", "model.layers.0.self_attn.k_proj.weight stored [C, 48] not [48, C]",
     "model.layers.0.self_attn.k_proj.weight", "model.safetensors|config.json"),
    ("missing-shard", "qwen2-base", "model-00002-of-00002.safetensors deleted",
     "model-00002-of-00002.safetensors", "model-00002-of-00002.safetensors"),
    ("truncated-shard", "qwen2-base", "model-00002-of-00002.safetensors cut by 100 bytes",
     "model-00002-of-00002.safetensors", "model-00002-of-00002.safetensors"),
]


def make_broken(root, name, base, seed):
    d = os.path.join(root, "broken-" + name)
    family, p = make_folder(base, d, seed)
    if name == "unknown-type":
        path = os.path.join(d, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg["model_type"] = "mamba"
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
    elif name in ("missing-tensor", "extra-tensor", "wrong-shape"):
        path = os.path.join(d, "model.safetensors")
        W = st_read(path)
        dt = p["dtype"]
        if name == "missing-tensor":
            del W["model.layers.1.mlp.up_proj.weight"]
        elif name == "extra-tensor":
            W["model.layers.0.mlp.extra_proj.weight"] = torch.ones(4, p["C"], dtype=DT)
        else:
            k = "model.layers.0.self_attn.k_proj.weight"
            W[k] = W[k].T.contiguous()
        st_write(path, list(W.items()), {n: dt for n in W})
    elif name == "missing-shard":
        os.remove(os.path.join(d, "model-00002-of-00002.safetensors"))
    elif name == "truncated-shard":
        path = os.path.join(d, "model-00002-of-00002.safetensors")
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size - 100)
    return d


def suite(root, seed):
    os.makedirs(root, exist_ok=True)
    rows = []
    for name, (family, p) in VARIANTS.items():
        if not p.get("suite", True):
            continue
        d = os.path.join(root, name)
        make_folder(name, d, seed)
        gen = torch.Generator().manual_seed(seed * 7919 + sum(map(ord, name)))
        oracle = os.path.join(root, name + ".oracle.f32")
        if family == "vit":
            N = N_IMAGES
            inp = os.path.join(root, name + ".u8")
            with open(inp, "wb") as f:
                f.write(bytes(torch.randint(0, 256, (N * p["ch"] * p["image"] ** 2,), generator=gen).tolist()))
            write_f32(oracle, [logits_images(d, inp, N)])
            rows.append((name, family, "images", d, inp, N, oracle, p.get("refusable", "")))
        else:
            inp = os.path.join(root, name + ".seqs")
            seqs = make_seqs(p["V"], p["P"], SEQ_LENGTHS, gen)
            write_seqs(inp, seqs)
            write_f32(oracle, logits_tokens(d, seqs))
            rows.append((name, family, "tokens", d, inp, len(seqs), oracle, p.get("refusable", "")))
    # GQA = MHA: the same models with K/V repeated per query head, as folders of their own
    with open(os.path.join(root, "pairs.tsv"), "w") as f:
        for name in GQA_PAIRS:
            d = os.path.join(root, name + "-mha")
            expand_kv(os.path.join(root, name), d)
            inp = os.path.join(root, name + ".seqs")
            oracle = os.path.join(root, name + "-mha.oracle.f32")
            write_f32(oracle, logits_tokens(d, read_seqs(inp)))
            rows.append((name + "-mha", VARIANTS[name][0], "tokens", d, inp, len(SEQ_LENGTHS), oracle, ""))
            f.write(f"{name}\t{name}-mha\n")
    with open(os.path.join(root, "suite.tsv"), "w") as f:
        for r in rows:
            f.write("\t".join(map(str, r)) + "\n")
    with open(os.path.join(root, "broken.tsv"), "w") as f:
        for name, base, what, must, where in BROKEN:
            d = make_broken(root, name, base, seed)
            kind = "images" if VARIANTS[base][0] == "vit" else "tokens"
            inp = os.path.join(root, base + (".u8" if kind == "images" else ".seqs"))
            f.write("\t".join((name, kind, d, inp, what, must, where)) + "\n")


GQA_PAIRS = ("llama-gqa", "llama-tied-bias", "qwen3-base")


def read_suite(root):
    rows = {}
    with open(os.path.join(root, "suite.tsv")) as f:
        for line in f:
            r = line.rstrip("\n").split("\t")
            rows[r[0]] = r
    with open(os.path.join(root, "pairs.tsv")) as f:
        pairs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return rows, pairs


def selfcheck(root, tol):
    """the oracle's own checks: sensitivity, and each GQA folder equal to its MHA expansion"""
    rows, pairs = read_suite(root)
    bad = sensitivity(root, tol)
    for a, b in pairs:
        d, n = compare(rows[a][6], rows[b][6])
        ok = d <= 1e-9
        bad |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} oracle: {a} = {b} (K/V repeated as MHA): max |diff| = {d:.3g} over {n} logits")
    return 1 if bad else 0


def compare_suite(root, results, tol):
    """RESULTS.tsv rows: variant, label (e.g. fast / ref), pathens output. Prints every figure and
    the worst per family; exit 1 when one is above tol."""
    suite_rows, pairs = read_suite(root)
    worst, bad, outs = {}, [], {}
    with open(results) as f:
        for line in f:
            if not line.strip():
                continue
            name, label, out = line.rstrip("\n").split("\t")
            outs[name, label] = out
            fam, oracle = suite_rows[name][1], suite_rows[name][6]
            d, n = compare(out, oracle)
            ok = d <= tol
            print(f"{'ok  ' if ok else 'FAIL'} {name} ({label}): max |pathens - oracle| = {d:.3g} over {n} logits")
            if not ok:
                bad.append(f"{name} ({label})")
            if d >= worst.get(fam, (-1, ""))[0]:
                worst[fam] = (d, f"{name} ({label})")
    for a, b in pairs:  # pathens on GQA = pathens on its MHA expansion
        if (a, "fast") in outs and (b, "fast") in outs:
            d, n = compare(outs[a, "fast"], outs[b, "fast"])
            ok = d <= tol
            print(f"{'ok  ' if ok else 'FAIL'} pathens: {a} = {b}: max |diff| = {d:.3g} over {n} logits")
            if not ok:
                bad.append(f"{a} = {b}")
    for fam in sorted(worst):
        print(f"worst {fam}: {worst[fam][0]:.3g} ({worst[fam][1]})")
    if bad:
        print(f"FAIL: above {tol:g}: {', '.join(bad)}")
        return 1
    return 0


# ---- `pathens eval` of a folder: NLL per token on documents ---------------------------------------

def cut_documents(buf):
    """[data] mode = documents (docs/formats.md): blank-line separated paragraphs (a blank line holds
    only spaces, tabs, CR, VT, FF), each paragraph's last CR dropped; bytes"""
    docs, cur = [], []
    for ln in buf.split(b"\n"):
        if ln.strip(b" \t\r\v\f"):
            cur.append(ln)
        elif cur:
            docs.append(cur)
            cur = []
    if cur:
        docs.append(cur)
    out = []
    for doc in docs:
        text = b"\n".join(doc)
        out.append(text[:-1] if text.endswith(b"\r") else text)
    return out


def nll_seqs(d, seqs, context):
    """sum over sequences (each truncated to context, skipped under 2 tokens) of the NLL of every
    token after the first, over the count of those tokens"""
    cfg, W, fam = load_checked(d)
    fwd = {"gpt2": forward_gpt2, "gpt_neox": forward_gpt_neox}.get(fam, forward_llama)
    total, n = 0.0, 0
    for ids in seqs:
        ids = ids[:context]
        if len(ids) < 2:
            continue
        logp = torch.log_softmax(fwd(cfg, W, torch.tensor(ids)), -1)
        tgt = torch.tensor(ids[1:])
        total -= logp[:-1].gather(1, tgt[:, None]).sum().item()
        n += len(ids) - 1
    return total / n, n


def eval_check(d, results_json, text_path, ids_path, limit, context, tol):
    """the dense nll_per_token and token count of `pathens eval` (RESULTS.json) of folder d's weights
    against the oracle's: on the first `limit` documents of TEXT as byte tokens (tokenizer = bytes,
    no BOS), or on the token ids of IDS.txt (one document a line, as the JS tokenizer gave them)"""
    with open(results_json) as f:
        dense = json.load(f)["dense"]
    if ids_path:
        seqs = read_seqs(ids_path)
    else:
        with open(text_path, "rb") as f:
            seqs = [list(doc) for doc in cut_documents(f.read())]
    # data.limit counts documents, also those dataset.c then drops for having under 2 tokens
    want, n = nll_seqs(d, seqs[:limit] if limit else seqs, context)
    got = dense["nll_per_token"]
    ok = abs(got - want) <= tol and dense["tokens"] == n
    print(f"{'ok  ' if ok else 'FAIL'} pathens eval {d}: nll_per_token {got!r} over {dense['tokens']} tokens, "
          f"oracle {want!r} over {n} (|diff| {abs(got - want):.3g}, tolerance {tol:g})")
    return 0 if ok else 1


# ---- GQA = MHA with K/V repeated ---------------------------------------------------------------

def expand_kv(src, dst):
    """the same model with num_key_value_heads = num_attention_heads, k/v rows repeated per head"""
    cfg, W, fam = load_checked(src)
    NH, NKV, hd = cfg["num_attention_heads"], kv_heads(cfg), head_dim(cfg)
    rep = NH // NKV
    for n in list(W):
        if n.endswith(("self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.k_proj.bias",
                       "self_attn.v_proj.bias")):
            t = W[n].reshape(NKV, hd, *W[n].shape[1:])
            W[n] = t[:, None].expand(NKV, rep, *t.shape[1:]).reshape(NH * hd, *W[n].shape[1:]).clone()
    cfg["num_key_value_heads"] = NH
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    st_write(os.path.join(dst, "model.safetensors"), list(W.items()), {n: "F32" for n in W})


# ---- sensitivity: what the suite's inputs would show of a plausible bug -------------------------

SENSITIVITY = [
    ("gpt2-base", "gelu-exact"), ("gpt2-hub", "c-proj-transposed"), ("gpt2-untied", "gelu-tanh"),
    ("llama-gqa", "no-llama3-scaling"), ("llama-gqa", "rope-interleaved"), ("llama-gqa", "kv-modulo"),
    ("llama-gqa", "flip-tie"), ("llama-tied-bias", "no-qkv-bias"), ("llama-mha", "no-llama3-scaling"),
    ("mistral-base", "kv-modulo"), ("mistral-window", "no-window"), ("qwen2-base", "no-qkv-bias"),
    ("qwen2-untied", "kv-modulo"), ("qwen2-untied", "unused-window"), ("qwen2-untied", "flip-tie"),
    ("qwen3-base", "no-qk-norm"), ("qwen3-tied-bias", "no-qk-norm"),
    ("gpt_neox-parallel", "full-rotary"), ("gpt_neox-parallel", "qkv-blocked"),
    ("gpt_neox-parallel", "flip-parallel"), ("gpt_neox-parallel", "gelu-tanh"),
    ("gpt_neox-sequential", "flip-parallel"), ("gpt_neox-sequential", "full-rotary"),
    ("gpt_neox-sequential", "rope-interleaved"),
    ("vit-base", "gelu-tanh"), ("vit-base", "patches-colmajor"), ("vit-base", "pixels-01"),
    ("vit-gray", "patches-colmajor"), ("vit-gray", "pixels-default"),
    ("vit-deit", "pixels-default"), ("vit-deit", "pixels-channel0"),
]


def sensitivity(root, tol):
    """each deviation of SENSITIVITY, run on the suite's folder and inputs, must move the logits by
    more than 5 x tol: a pathens with that bug cannot pass the comparison (the GELU variants are the
    smallest, 6e-4 .. 4e-3)"""
    rows, _ = read_suite(root)
    bad = 0
    for name, dev in SENSITIVITY:
        _, fam, kind, d, inp, n, oracle, _ = rows[name]
        DEV.clear()
        DEV.add(dev)
        try:
            out = logits_images(d, inp, int(n)) if kind == "images" else torch.cat(logits_tokens(d, read_seqs(inp)))
        finally:
            DEV.clear()
        ref = read_f32(oracle)
        diff = (out.flatten().to(torch.float32).to(DT) - ref).abs().max().item()
        ok = diff > 5 * tol
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name} with {dev}: logits move by {diff:.3g}")
    return 1 if bad else 0


# ---- command line -------------------------------------------------------------------------------

def opt(args, flag, default, conv):
    if flag in args:
        i = args.index(flag)
        if i + 1 >= len(args):
            raise Bad(f"{flag} needs a value")
        v = conv(args[i + 1])
        del args[i:i + 2]
        return v
    return default


def main(argv):
    args = argv[1:]
    seed = opt(args, "--seed", 1, int)
    tol = opt(args, "--tol", 1e-4, float)
    label = opt(args, "--label", None, str)
    lengths = opt(args, "--lengths", ",".join(map(str, SEQ_LENGTHS)), str)
    limit = opt(args, "--limit", 0, int)
    context = opt(args, "--context", 0, int)
    text = opt(args, "--text", None, str)
    ids = opt(args, "--ids", None, str)
    if not args:
        raise Bad(__doc__)
    cmd, rest = args[0], args[1:]
    if cmd == "list" and not rest:
        for name, (family, p) in VARIANTS.items():
            print(f"{family}\t{name.split('-', 1)[1]}\t{p['dtype']}\t{p['shards']} file(s)")
    elif cmd == "make" and len(rest) == 3:
        make_folder(f"{rest[0]}-{rest[1]}", rest[2], seed)
    elif cmd == "seqs" and len(rest) == 3:
        gen = torch.Generator().manual_seed(seed)
        write_seqs(rest[2], make_seqs(int(rest[0]), int(rest[1]), [int(x) for x in lengths.split(",")], gen))
    elif cmd == "pixels" and len(rest) == 4:
        gen = torch.Generator().manual_seed(seed)
        N, ch, S = int(rest[0]), int(rest[1]), int(rest[2])
        with open(rest[3], "wb") as f:
            f.write(bytes(torch.randint(0, 256, (N * ch * S * S,), generator=gen).tolist()))
    elif cmd == "logits" and len(rest) == 3:
        write_f32(rest[2], logits_tokens(rest[0], read_seqs(rest[1])))
    elif cmd == "logits-images" and len(rest) == 4:
        write_f32(rest[3], [logits_images(rest[0], rest[1], int(rest[2]))])
    elif cmd == "compare" and len(rest) == 2:
        d, n = compare(rest[0], rest[1])
        ok = d <= tol
        print(f"{'ok' if ok else 'FAIL'} {label or rest[0]}: max |a - b| = {d:.3g} over {n} values (tolerance {tol:g})")
        return 0 if ok else 1
    elif cmd == "expand-kv" and len(rest) == 2:
        expand_kv(rest[0], rest[1])
    elif cmd == "suite" and len(rest) == 1:
        suite(rest[0], seed)
    elif cmd == "sensitivity" and len(rest) == 1:
        return sensitivity(rest[0], tol)
    elif cmd == "compare-suite" and len(rest) == 2:
        return compare_suite(rest[0], rest[1], tol)
    elif cmd == "docs" and len(rest) == 3:
        with open(rest[0], "rb") as f:
            docs = cut_documents(f.read())[:int(rest[1])]
        with open(rest[2], "w") as f:
            json.dump([doc.decode("utf-8", "replace") for doc in docs], f)
    elif cmd == "eval-check" and len(rest) == 2 and (text is None) != (ids is None):
        return eval_check(rest[0], rest[1], text, ids, limit, context or 1 << 30, tol)
    elif cmd == "selfcheck" and len(rest) == 1:
        return selfcheck(rest[0], tol)
    else:
        raise Bad(f"bad usage: {' '.join(argv[1:])}\n{__doc__}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (Bad, OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        print(f"hf_oracle.py: {e}", file=sys.stderr)
        sys.exit(2)

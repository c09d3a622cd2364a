#!/usr/bin/env python3
"""bench/claims_table.py RUNS_DIR fashion|shakespeare: the markdown table of bench/claims.sh."""
import csv, json, os, sys

out, ds = sys.argv[1], sys.argv[2]
img = ds == "fashion"


def metric(block):
    """(value, ci95 half-width) of accuracy % (images) or bits per byte (text)"""
    if img:
        lo, hi = block["accuracy_ci95"]
        return 100 * block["accuracy"], 100 * (hi - lo) / 2
    lo, hi = block["nll_per_token_ci95"]
    return block["bits_per_byte"], (hi - lo) / 2 * block["bits_per_byte"] / block["nll_per_token"]


def curve_at(path, k):
    with open(os.path.join(path, "curve.csv")) as f:
        for row in csv.DictReader(f):
            if int(row["k"]) == k:
                return 100 * float(row["accuracy"]) if img else None
    return None


def speed(run):
    """median throughput of the training log's rows (robust to a resumed run's restarted clock)"""
    with open(os.path.join(run, "train_log.csv")) as f:
        v = sorted(float(r["examples_per_s" if img else "tokens_per_s"]) for r in csv.DictReader(f))
    return v[len(v) // 2]


def delta(block):
    d = block["accuracy_minus_dense" if img else "minus_dense"]
    scale = 100 if img else block["bits_per_byte"] / block["nll_per_token"]
    return d["mean"] * scale, (d["ci95"][1] - d["ci95"][0]) / 2 * scale


unit = "test accuracy %" if img else "test bits per byte"
print(f"| model ({ds}) | eval | dense {unit} | K=4 | K=16 {unit} | K=16 - dense | att kept (SSA steps) | att tape MB/chunk | att GFLOP/step | train " + ("img/s" if img else "tok/s") + " (median) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for var in ["dense", "unbiased-4", "unbiased-8", "local-4", "local-8"]:
    d = os.path.join(out, var)
    tj = json.load(open(os.path.join(d, "train.json")))
    at = tj.get("attention_ssa_steps") or tj["attention_dense_steps"]  # the SSA phase (dense training: all)
    evals = [("eval-local-4", "final"), ("eval-unbiased-4", "final")] if var == "dense" else [("eval-pre-finetune", "before fine-tune"), ("eval", "final")]
    for ev, label in evals:
        p = os.path.join(d, ev)
        if not os.path.exists(os.path.join(p, "results.json")):
            continue
        r = json.load(open(os.path.join(p, "results.json")))
        dv, dci = metric(r["dense"])
        ev_, eci = metric(r["ensemble"])
        dd, ddci = delta(r["ensemble"])
        k4 = curve_at(p, 4)
        k4s = f"{k4:.2f}" if k4 is not None else "(curve)"
        if not img:  # the curve holds nll per scored target; bits per byte = nll / ln 2 * tokens / bytes
            with open(os.path.join(p, "curve.csv")) as f:
                rows = {int(x["k"]): float(x["nll_per_token"]) for x in csv.DictReader(f)}
            k4s = f"{rows[4] * r['ensemble']['bits_per_byte'] / r['ensemble']['nll_per_token']:.4f}" if 4 in rows else "-"
        sc = r["config"]["pathways"]
        fmt = "{:.2f} ± {:.2f}" if img else "{:.4f} ± {:.4f}"
        dfmt = "{:+.2f} ± {:.2f}" if img else "{:+.4f} ± {:.4f}"
        print(f"| {var}{' (' + label + ')' if label != 'final' else ''} | ensemble {sc['scheme']} rho {sc['ratio']:g} "
              f"| {fmt.format(dv, dci)} | {k4s} | {fmt.format(ev_, eci)} | {dfmt.format(dd, ddci)} "
              f"| {100 * at['kept_fraction_mean']:.1f}% | {at['tape_bytes_per_chunk_max'] / 1e6:.2f} "
              f"| {at['flops_per_step_mean'] / 1e9:.3f} | {speed(d):.0f} |")

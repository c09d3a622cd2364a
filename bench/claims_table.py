#!/usr/bin/env python3
"""bench/claims_table.py OUT DATASET...: the claims table of bench/claims.sh (issue 14, item 4).

Reads the aggregated training sweeps OUT/<dataset>/<grid>/sweep.json (pathens sweep --aggregate of
bench/claims.sh's grids: dense, ssa, seeds-1, seeds-2) and prints markdown: one row per claim of
the paper and dataset -> verdict -> evidence (numbers with 95% intervals, seed spread) -> where
the numbers are; then every point. Figures: test accuracy in % (Fashion-MNIST) or bits per byte
(Tiny Shakespeare, lower is better); "better" below means higher accuracy or fewer bits.

Intervals. Within one model (ensemble - dense) the interval is the paired one of results.json
(test units as the unit). Between two models (SSA - dense training, local - unbiased, fine-tune -
none) it is the unpaired one, d +- 1.96 sqrt(se_a^2 + se_b^2) with each model's standard error over
the test units (from its own interval): conservative, since both are scored on the same units.
These intervals are over test units only; the seed spread (sample standard deviation over
train.seed, dense training and the two SSA configurations chosen on validation loss) is printed
beside them and is what decides whether a difference is larger than training noise.

Verdict rules (written before any result was seen), for each comparison: "better" when its
interval excludes 0 on the better side, "worse" when it excludes 0 on the worse side, "same"
otherwise. Over the comparisons of a claim that something beats something:
  holds          more than half are better
  does not hold  fewer than a quarter are better (e.g. all the same, or worse)
  mixed          otherwise
and of "SSA training matches or beats dense training":
  holds          more than half are better or same, and none is worse than dense by more than its
                 interval plus twice the standard deviation of dense training over seeds
  does not hold  more than half are worse
  mixed          otherwise
For "SSA cuts attention cost 4-8x" a comparison is the attention FLOPs of a dense step over an SSA
step: it holds when each is at least 0.75 rho (3x at rho 4, 6x at rho 8), does not hold when none
is, and is mixed otherwise.
"""
import json, math, os, statistics, sys

Z = 1.959963984540054
out, sets = sys.argv[1], sys.argv[2:]
if not sets:
    sys.exit("usage: bench/claims_table.py OUT fashion|shakespeare ...")


def load(ds):
    """every finished point of the dataset's grids, as flat dicts"""
    pts, grids = [], []
    base = os.path.join(out, ds)
    for g in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        f = os.path.join(base, g, "sweep.json")
        if not os.path.exists(f):
            continue
        grids.append(g)
        for r in json.load(open(f))["rows"]:
            m, t = r["metrics"], r["train"]
            p = dict(grid=g, dir=r["dir"], scheme=t["scheme"], ratio=t["ratio"], steps=t["steps"],
                     ft=t["finetune_dense_steps"], seed=t["seed"], val_loss=t["val_loss"], metric=m["metric"],
                     flops_ssa=t["att_flops_ssa_step"], flops_dense=t["att_flops_dense_step"],
                     kept=m.get("kept_fraction"))
            for k in ("dense", "ensemble", "k1", "k4", "ensemble_minus_dense"):
                p[k] = m.get(k)
                p[k + "_ci"] = m.get(k + "_ci95")
            pts.append(p)
    return pts, grids


def conv(p, v):
    """a metric value in the table's unit: accuracy %, or bits per byte"""
    if v is None:
        return None
    return 100 * v if p["metric"] == "accuracy" else v / math.log(2)


def sign(p):
    """+1 when a larger raw value is better (accuracy), -1 for NLL"""
    return 1 if p["metric"] == "accuracy" else -1


def se(p, k):
    lo, hi = p[k + "_ci"]
    return (hi - lo) / (2 * Z)


def fmt(p, v):
    return f"{v:.2f}" if p["metric"] == "accuracy" else f"{v:.3f}"


def fmt_d(p, d, h):
    """a difference in the table's unit, with its interval"""
    d, h = conv(p, d), conv(p, h)
    f = "{:+.2f} [{:+.2f}, {:+.2f}]" if p["metric"] == "accuracy" else "{:+.3f} [{:+.3f}, {:+.3f}]"
    return f.format(d, d - h, d + h)


def classify(p, d, h):
    """better / worse / same for a raw difference d +- h (a minus b) in p's metric"""
    lo, hi = d - h, d + h
    if sign(p) * lo > 0 and sign(p) * hi > 0:
        return "better"
    if sign(p) * lo < 0 and sign(p) * hi < 0:
        return "worse"
    return "same"


def unpaired(a, b, k="dense"):
    """a - b of metric k between two models, unpaired 95% half-width"""
    return a[k] - b[k], Z * math.hypot(se(a, k), se(b, k))


def verdict(classes, matches=False, worst_ok=True):
    """the rules of the docstring: a 'beats' claim, or (matches=True) a 'matches or beats' one"""
    n = len(classes)
    if n == 0:
        return "not measured"
    better = sum(c == "better" for c in classes)
    same = sum(c == "same" for c in classes)
    worse = sum(c == "worse" for c in classes)
    if matches:
        if (better + same) * 2 > n and worst_ok:
            return "holds"
        return "does not hold" if worse * 2 > n else "mixed"
    if better * 2 > n:
        return "holds"
    return "does not hold" if better * 4 < n else "mixed"


def label(p):
    if p["scheme"] == "dense":
        return "dense"
    return f"{p['scheme']} ρ{p['ratio']:g} ft{100 * p['ft'] / p['steps']:.0f}%"


def spread(ps, k="dense"):
    v = [conv(p, p[k]) for p in ps]
    if not v:
        return "-"
    if len(v) == 1:
        return f"{fmt(ps[0], v[0])} (1 seed)"
    return f"{fmt(ps[0], statistics.mean(v))} ± {fmt(ps[0], statistics.stdev(v))} ({len(v)} seeds)"


CMD = os.environ.get("CLAIMS_CMD", "bench/claims.sh build both")  # set by bench/claims.sh: the command that ran
rows, detail = [], []
for ds in sets:
    pts, grids = load(ds)
    where = f"{os.path.relpath(os.path.join(out, ds))}/{{{','.join(grids)}}}/sweep.csv"
    if not pts:
        rows.append(("all", ds, "not measured", f"no finished points under {out}/{ds}", CMD))
        continue
    unit = "test accuracy %" if pts[0]["metric"] == "accuracy" else "test bits/byte"
    dense = sorted((p for p in pts if p["scheme"] == "dense"), key=lambda p: p["seed"])
    ssa1 = sorted((p for p in pts if p["scheme"] != "dense" and p["seed"] == 1),
                  key=lambda p: (p["scheme"], p["ratio"], p["ft"]))
    d1 = next((p for p in dense if p["seed"] == 1), dense[0] if dense else None)
    dense_sd = statistics.stdev([p["dense"] for p in dense]) if len(dense) > 1 else 0.0

    # 1. attention cost
    cls, ev = [], []
    dense_flops = next((p["flops_dense"] for p in pts if p["flops_dense"]), None)
    for r in sorted({p["ratio"] for p in ssa1}):
        for s in sorted({p["scheme"] for p in ssa1}):
            f = [p["flops_ssa"] for p in ssa1 if p["ratio"] == r and p["scheme"] == s and p["flops_ssa"]]
            if not f or not dense_flops:
                continue
            cut = dense_flops / statistics.mean(f)
            cls.append("better" if cut >= 0.75 * r else "worse")
            ev.append(f"{s} ρ{r:g} {cut:.1f}x")
    v = "not measured" if not cls else "holds" if all(c == "better" for c in cls) else \
        "does not hold" if not any(c == "better" for c in cls) else "mixed"
    rows.append(("SSA cuts attention cost 4-8x", ds, v,
                 "attention FLOPs of a dense step / an SSA step (training, the last step of each phase): "
                 + ", ".join(ev), f"{CMD}; {where} (att_flops_*_step)"))

    # 2. SSA training matches or beats dense training (the fine-tuned recipes, seed 1, dense evaluation)
    cmp = [(p, *unpaired(p, d1)) for p in ssa1 if p["ft"] > 0] if d1 else []
    cls = [classify(p, d, h) for p, d, h in cmp]
    worst_ok = all(sign(p) * d >= -2 * dense_sd - h for p, d, h in cmp)  # none worse beyond the seed spread
    ev = f"{sum(c != 'worse' for c in cls)} of {len(cls)} SSA recipes with a dense fine-tune match or beat dense " \
         f"training ({unit}, SSA − dense, seed 1): " + "; ".join(f"{label(p)} {fmt_d(p, d, h)}" for p, d, h in cmp)
    chosen = sorted({(p["scheme"], p["ratio"], p["ft"]) for p in pts if p["scheme"] != "dense" and p["seed"] > 1})
    ev += f". Seeds: dense {spread(dense)}"
    for c in chosen:
        ps = [p for p in pts if (p["scheme"], p["ratio"], p["ft"]) == c]
        ev += f"; {label(ps[0])} {spread(ps)}"
    rows.append(("SSA training matches or beats dense training", ds, verdict(cls, matches=True, worst_ok=worst_ok), ev,
                 f"{CMD}; {where} (dense)"))

    # 3. a self-ensemble beats dense inference (K = 16, the model's own scheme and rho)
    cls, ev = [], []
    for p in ssa1:
        d, (lo, hi) = p["ensemble_minus_dense"], p["ensemble_minus_dense_ci"]
        cls.append(classify(p, d, (hi - lo) / 2))
        ev.append(f"{label(p)} {fmt_d(p, d, (hi - lo) / 2)}")
    extra = ""
    if d1 and d1["ensemble_minus_dense"] is not None:
        lo, hi = d1["ensemble_minus_dense_ci"]
        extra = f"; dense-trained model, its K = 16 sweep.dense_scheme ensemble: {fmt_d(d1, d1['ensemble_minus_dense'], (hi - lo) / 2)}"
    rows.append(("A self-ensemble beats dense inference", ds, verdict(cls),
                 f"{sum(c == 'better' for c in cls)} of {len(cls)} SSA-trained models: K = 16 ensemble − dense "
                 f"(paired, {unit}, seed 1): " + "; ".join(ev) + extra, f"{CMD}; {where} (ensemble_minus_dense)"))

    # 4. local beats unbiased (on local data: text; images are reported, the claim is about text)
    cls, ev = [], []
    for p in ssa1:
        if p["scheme"] != "local":
            continue
        q = next((q for q in ssa1 if q["scheme"] == "unbiased" and q["ratio"] == p["ratio"] and q["ft"] == p["ft"]), None)
        if q:
            d, h = unpaired(p, q)
            cls.append(classify(p, d, h))
            ev.append(f"ρ{p['ratio']:g} ft{100 * p['ft'] / p['steps']:.0f}% {fmt_d(p, d, h)}")
    v = verdict(cls)
    if ds == "fashion":
        v += " (images: not the claim's local data)"
    rows.append(("Local beats unbiased on local data", ds, v,
                 f"local − unbiased training, dense evaluation ({unit}, seed 1): " + "; ".join(ev), f"{CMD}; {where}"))

    # 5. the dense fine-tune helps
    cls, ev = [], []
    for p in ssa1:
        if p["ft"] == 0:
            continue
        q = next((q for q in ssa1 if q["scheme"] == p["scheme"] and q["ratio"] == p["ratio"] and q["ft"] == 0), None)
        if q:
            d, h = unpaired(p, q)
            cls.append(classify(p, d, h))
            ev.append(f"{label(p)} {fmt_d(p, d, h)}")
    rows.append(("The dense fine-tune helps", ds, verdict(cls),
                 f"fine-tuned − no fine-tune at the same step budget, dense evaluation ({unit}, seed 1): "
                 + "; ".join(ev), f"{CMD}; {where}"))

    # 6. important pathways give lighter models: not part of this grid
    rows.append(("Important pathways give lighter models", ds, "not measured here",
                 "the training grid does not prune; pathens prune RUN_DIR --budget F --evaluate measures it "
                 "(docs/importance.md)", "-"))

    for p in sorted(pts, key=lambda p: (p["scheme"] != "dense", p["scheme"], p["ratio"], p["ft"], p["seed"])):
        ci = lambda k: "[" + ", ".join(fmt(p, conv(p, x)) for x in p[k + "_ci"]) + "]" if p.get(k + "_ci") else ""
        e = p["ensemble_minus_dense"]
        vl = f"{p['val_loss']:.4f}" if p["val_loss"] is not None else "-"
        detail.append(f"| {ds} | {label(p)} | {p['seed']:g} | {vl} | {fmt(p, conv(p, p['dense']))} {ci('dense')} "
                      f"| {fmt(p, conv(p, p['k1'])) if p['k1'] is not None else '-'} "
                      f"| {fmt(p, conv(p, p['k4'])) if p['k4'] is not None else '-'} "
                      f"| {fmt(p, conv(p, p['ensemble'])) + ' ' + ci('ensemble') if p['ensemble'] is not None else '-'} "
                      f"| {fmt_d(p, e, (p['ensemble_minus_dense_ci'][1] - p['ensemble_minus_dense_ci'][0]) / 2) if e is not None else '-'} "
                      f"| {p['grid']}/{p['dir']} |")

print("| claim (paper) | data | verdict here | evidence (95% intervals over test units; seed spread: mean ± sd) | command |")
print("|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(str(x) for x in r) + " |")
print()
print("Every point (test metric: accuracy % for fashion, bits per byte for shakespeare; ensemble: the model's own "
      "scheme and ρ, dense-trained models sweep.dense_scheme at ρ 4; K = 1 and 4 from the ensemble-size curve):")
print()
print("| data | training | seed | val loss | dense [95% CI] | K=1 | K=4 | K=16 [95% CI] | K=16 − dense [95% CI] | point |")
print("|---|---|---:|---:|---|---:|---:|---|---|---|")
for d in detail:
    print(d)

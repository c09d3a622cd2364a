#!/usr/bin/python3
"""run.py: the mutation check. Every mutant of tests/mutation/mutants.tsv must be killed.

    /usr/bin/python3 tests/mutation/run.py [--only NAME[,NAME...]] [--no-baseline]

A scratch copy of the source tree (the files git tracks plus untracked, not ignored ones) is kept
in $PATHENS_TEST_TMP/mutation/src and configured once in $PATHENS_TEST_TMP/mutation/build (Release,
MPI, the same data folders); later runs copy only the files that changed, so builds are
incremental (-j2). Then:
  baseline  the killing tests of every mutant (each with its env) pass on the unmutated copy,
            so a kill is the mutant's doing, not a test that fails anyway;
  mutants   for each line: `old` must occur exactly once in `file` (else FAIL: the source drifted
            and the line must be updated), the file is rewritten with `new`, the tree is rebuilt
            (a mutant that does not build is a FAIL), the killing tests run (ctest -R '^(A|B)$', env
            set); at least one must fail, else the mutant SURVIVED (FAIL). The file is restored.
Prints a table (mutant, killed by, seconds) and writes it to $PATHENS_TEST_TMP/mutation/report.txt.
Exit 0: every mutant applied, built and was killed; 1: otherwise; 2: bad usage or setup.
Environment: PATHENS_SRC (source tree), PATHENS_TEST_TMP, PATHENS_DATA_DIR, PATHENS_FASHION_DIR (as
CTest sets them); MUTATION_JOBS (build jobs, default 2).
"""
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def die(msg, code=2):
    print(f"FAIL: mutation: {msg}")
    sys.exit(code)


def unescape(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[s[i + 1]])
            i += 2
        else:
            out.append(s[i]); i += 1
    return "".join(out)


def load_mutants(path):
    rows = []
    for ln, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        if len(f) != 6:
            die(f"{path}:{ln}: {len(f)} tab-separated fields, expected 6 (name file old new tests env)")
        name, file, old, new, tests, env = f
        envd = {}
        if env != "-":
            for kv in env.split():
                if "=" not in kv:
                    die(f"{path}:{ln}: env entry {kv!r} is not NAME=VALUE")
                k, v = kv.split("=", 1)
                envd[k] = v
        names = [t for t in tests.split(",") if t]
        if not names or any(not re.fullmatch(r"[A-Za-z0-9_]+", t) for t in names):
            die(f"{path}:{ln}: killing tests {tests!r}: expected CTest names separated by commas")
        rows.append(dict(name=name, file=file, old=unescape(old), new=unescape(new), tests=names, env=envd, line=ln))
    names = [r["name"] for r in rows]
    if len(set(names)) != len(names):
        die(f"{path}: duplicate mutant names")
    return rows


def source_files(src):
    try:
        out = subprocess.run(["git", "-C", src, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             check=True, capture_output=True).stdout
        files = [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for root, dirs, names in os.walk(src):
            dirs[:] = [d for d in dirs if d != ".git" and not d.startswith("build") and d not in ("runs", "data")]
            files += [os.path.relpath(os.path.join(root, n), src) for n in names]
    return [f for f in files if os.path.isfile(os.path.join(src, f)) and not os.path.islink(os.path.join(src, f))]


def sync(src, dst):
    """copy changed files only (new mtime), so the scratch build stays incremental"""
    n, files = 0, source_files(src)
    keep = set(files)
    for root, _, names in os.walk(dst):  # files gone from the source go from the copy too
        for nm in names:
            rel = os.path.relpath(os.path.join(root, nm), dst)
            if rel not in keep:
                os.remove(os.path.join(root, nm)); n += 1
    for f in files:
        a, b = os.path.join(src, f), os.path.join(dst, f)
        data = open(a, "rb").read()
        if os.path.exists(b) and open(b, "rb").read() == data:
            continue
        os.makedirs(os.path.dirname(b), exist_ok=True)
        open(b, "wb").write(data)
        shutil.copymode(a, b)
        n += 1
    return n


def sh(cmd, log, env=None, timeout=None):
    with open(log, "a") as lf:
        lf.write(f"$ {' '.join(cmd)}\n")
        lf.flush()
        try:
            return subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            lf.write(f"timed out after {timeout} s\n")
            return 124


def run_tests(build, tests, env, log):
    """(rc, failed test names) of the CTest tests named"""
    regex = "^(" + "|".join(tests) + ")$"
    e = dict(os.environ)
    e.update(env)
    start = os.path.getsize(log) if os.path.exists(log) else 0
    rc = sh(["ctest", "--test-dir", build, "-R", regex, "--output-on-failure", "--timeout", "600"], log, env=e,
            timeout=1500)
    text = open(log, errors="replace").read()[start:]
    failed = re.findall(r"^\s*\d+ - (\S+) \(", text, re.M)
    return rc, failed


def main(argv):
    only, baseline = None, True
    i = 1
    while i < len(argv):
        if argv[i] == "--only" and i + 1 < len(argv):
            only = set(argv[i + 1].split(",")); i += 2
        elif argv[i] == "--no-baseline":
            baseline = False; i += 1
        else:
            print(__doc__); return 2
    for k in ("PATHENS_SRC", "PATHENS_TEST_TMP", "PATHENS_DATA_DIR"):
        if not os.environ.get(k):
            die(f"{k} is not set (run through ctest, or set it)")
    src = os.path.abspath(os.environ["PATHENS_SRC"])
    top = os.path.join(os.path.abspath(os.environ["PATHENS_TEST_TMP"]), "mutation")
    scratch, build = os.path.join(top, "src"), os.path.join(top, "build")
    jobs = os.environ.get("MUTATION_JOBS", "2")
    mutants = load_mutants(os.path.join(HERE, "mutants.tsv"))
    if only:
        unknown = only - {m["name"] for m in mutants}
        if unknown:
            die(f"--only: no mutant named {', '.join(sorted(unknown))}")
        mutants = [m for m in mutants if m["name"] in only]
    os.makedirs(top, exist_ok=True)
    log = os.path.join(top, "log.txt")
    open(log, "w").close()
    t_all = time.time()
    # the scratch tree: unmutated, then configured and built
    n = sync(src, scratch)
    print(f"mutation: scratch copy {scratch} ({n} file(s) updated); build {build}; log {log}", flush=True)
    for m in mutants:
        p = os.path.join(scratch, m["file"])
        if not os.path.isfile(p):
            die(f"mutant {m['name']}: no file {m['file']}", 1)
    if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
        cfg = ["cmake", "-S", scratch, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DPATHENS_WITH_MPI=ON",
               f"-DPATHENS_DATA_DIR={os.environ['PATHENS_DATA_DIR']}"]
        if os.environ.get("PATHENS_FASHION_DIR"):
            cfg.append(f"-DPATHENS_FASHION_DIR={os.environ['PATHENS_FASHION_DIR']}")
        if sh(cfg, log):
            die(f"configuring the scratch build failed (see {log})", 1)
    t = time.time()
    if sh(["cmake", "--build", build, "-j", jobs], log):
        die(f"the unmutated scratch copy does not build (see {log})", 1)
    print(f"mutation: unmutated build {time.time() - t:.0f} s", flush=True)
    if baseline:
        seen = set()
        for m in mutants:
            for test in m["tests"]:
                key = (test, tuple(sorted(m["env"].items())))
                if key in seen:
                    continue
                seen.add(key)
                t = time.time()
                rc, failed = run_tests(build, [test], m["env"], log)
                envs = " ".join(f"{k}={v}" for k, v in m["env"].items())
                print(f"baseline {test} {envs}: {'pass' if rc == 0 else 'FAIL'} ({time.time() - t:.0f} s)", flush=True)
                if rc != 0:
                    die(f"{test} ({envs}) fails without any mutant: fix it first (see {log})", 1)
    rows, bad = [], 0
    for m in mutants:
        t = time.time()
        p = os.path.join(scratch, m["file"])
        orig = open(p, encoding="utf-8").read()
        cnt = orig.count(m["old"])
        if cnt != 1:
            status, killers = f"FAIL: no longer applies ('old' found {cnt} times in {m['file']})", ""
        else:
            open(p, "w", encoding="utf-8").write(orig.replace(m["old"], m["new"]))
            try:
                if sh(["cmake", "--build", build, "-j", jobs], log):
                    status, killers = "FAIL: does not build", ""
                else:
                    rc, failed = run_tests(build, m["tests"], m["env"], log)
                    if rc != 0:
                        status, killers = "killed", " ".join(failed) or f"ctest exit {rc}"
                    else:
                        status, killers = "FAIL: SURVIVED", ""
            finally:
                open(p, "w", encoding="utf-8").write(orig)
        dt = time.time() - t
        ok = status == "killed"
        bad += not ok
        rows.append((m["name"], m["file"], status, killers, dt))
        print(f"{'ok  ' if ok else 'FAIL'} {m['name']:32s} {m['file']:18s} {status}{' by ' + killers if ok else ''} "
              f"({dt:.0f} s)", flush=True)
    # leave the scratch build unmutated for the next run
    sh(["cmake", "--build", build, "-j", jobs], log)
    total = time.time() - t_all
    with open(os.path.join(top, "report.txt"), "w") as f:
        f.write("mutant\tfile\tstatus\tkilled by\tseconds\n")
        for r in rows:
            f.write(f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t{r[4]:.0f}\n")
        f.write(f"total\t\t{len(rows) - bad}/{len(rows)} killed\t\t{total:.0f}\n")
    print(f"mutation: {len(rows) - bad} of {len(rows)} mutants killed, {total:.0f} s in all")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""The layering rules of ARCHITECTURE.md, checked on the source tree.

Reads every #include "..." of every C source and header in the layered
folders, resolves it as the compiler does (the file's own folder, then
src/, then the top of the tree), and fails when a file includes a layer its
own layer may not reach. The allowed pairs are the table between the
<!-- layers --> markers in ARCHITECTURE.md, so the document and the test
cannot disagree. It also fails on two files of the same name, and on a
function longer than the limit written under the table.

Usage: check_layers.py [--root DIR] [--report | --graph]
  --report  print the table, every crossing include and the function-length
            distribution (median, longest five), then the verdict.
  --graph   print only the include graph between layers (includes a pair).
Exit 0 when every rule holds, 1 otherwise.
"""
import os
import re
import statistics
import sys

LAYERED = ("src", "index", "storage", "encoder", "python/hydb", "postgres")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def parse_table(root):
    """Layers (name -> path prefixes) and allowed includes, from the doc."""
    text = open(os.path.join(root, "ARCHITECTURE.md"), encoding="utf-8").read()
    m = re.search(r"<!-- layers -->(.*?)<!-- /layers -->", text, re.S)
    if not m:
        sys.exit("ARCHITECTURE.md: no <!-- layers --> table")
    layers, allowed, order = {}, {}, []
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("layer", "") or set(cells[0]) <= set("-: "):
            continue
        name = cells[0].strip("`* ")
        layers[name] = [p.strip("` ") for p in cells[1].split(",") if p.strip()]
        allowed[name] = {p.strip("` ") for p in cells[2].split(",")
                         if p.strip() and p.strip() != "nothing"}
        order.append(name)
    lim = re.search(r"no function is longer than\s+(\d+) lines", m.group(1))
    if not lim:
        sys.exit("ARCHITECTURE.md: the layers section names no function length limit")
    return layers, allowed, order, int(lim.group(1))


def layer_of(path, layers):
    """The layer whose longest prefix matches path (a file or a folder/)."""
    best, blen = None, -1
    for name, prefixes in layers.items():
        for p in prefixes:
            hit = path == p if not p.endswith("/") else path.startswith(p)
            if hit and len(p) > blen:
                best, blen = name, len(p)
    return best


def sources(root):
    for top in LAYERED:
        for dp, dn, fn in os.walk(os.path.join(root, top)):
            dn[:] = sorted(d for d in dn if not d.startswith(".") and d != "build")
            for f in sorted(fn):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(dp, f), root)


def resolve(root, src, inc):
    for base in (os.path.dirname(src), "src", ""):
        cand = os.path.normpath(os.path.join(base, inc))
        if os.path.isfile(os.path.join(root, cand)):
            return cand
    return None  # generated (config.h) or outside the tree


def check_includes(root, layers, allowed, out, edges=None):
    bad = crossing = 0
    for src in sources(root):
        me = layer_of(src, layers)
        if me is None:
            out.append(f"{src}: in no layer of ARCHITECTURE.md")
            bad += 1
            continue
        for n, line in enumerate(open(os.path.join(root, src), encoding="utf-8",
                                      errors="replace"), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target = resolve(root, src, m.group(1))
            if target is None:
                continue
            them = layer_of(target, layers)
            if them == me:
                continue
            crossing += 1
            if edges is not None:
                edges[(me, them)] = edges.get((me, them), 0) + 1
            if them in allowed[me] or target in allowed[me]:
                continue
            out.append(f"{src}:{n}: includes {target} ({them}); "
                       f"layer {me} may include only: "
                       f"{', '.join(sorted(allowed[me])) or 'nothing'}")
            bad += 1
    return bad, crossing


def check_names(root, out):
    seen, bad = {}, 0
    for src in sources(root):
        if src.startswith(("python/", "postgres/")):
            continue
        name = os.path.basename(src)
        if name in seen:
            out.append(f"{src}: same file name as {seen[name]}")
            bad += 1
        seen.setdefault(name, src)
    return bad


def functions(root):
    """(lines, file, name) of every function defined at column 0 with its
    opening brace on a line of its own (the tree's style)."""
    for src in sources(root):
        if not src.endswith(".c"):
            continue
        lines = open(os.path.join(root, src), encoding="utf-8",
                     errors="replace").read().split("\n")
        i = 0
        while i < len(lines):
            if lines[i] == "{":
                j = i
                while j > 0 and lines[j - 1].strip() and not lines[j - 1].startswith(
                        ("}", "#", "/*", " *")) and not lines[j - 1].rstrip().endswith(";"):
                    j -= 1
                m = re.search(r"(\w+)\s*\(", " ".join(lines[j:i]))
                k = i + 1
                while k < len(lines) and lines[k] != "}":
                    k += 1
                yield k - j + 1, src, m.group(1) if m else "?"
                i = k
            i += 1


def main():
    root = "."
    args = sys.argv[1:]
    if "--root" in args:
        root = args[args.index("--root") + 1]
    report = "--report" in args
    layers, allowed, order, limit = parse_table(root)
    out, edges = [], {}
    bad, crossing = check_includes(root, layers, allowed, out, edges)
    if "--graph" in args:
        # the include graph between layers: includes per pair, top down
        for a in order:
            row = ", ".join("%s %d" % (b, edges[(a, b)]) for b in order if (a, b) in edges)
            print("  %-9s -> %s" % (a, row or "nothing"))
        return 0
    bad_names = check_names(root, out)
    fns = sorted(functions(root), reverse=True)
    long_fns = [f for f in fns if f[0] > limit]
    for n, src, name in long_fns:
        out.append(f"{src}: {name}() is {n} lines (limit {limit})")
    if report:
        print("layer -> may include")
        for name in order:
            print(f"  {name:9} {', '.join(layers[name]):28} -> "
                  f"{', '.join(sorted(allowed[name])) or 'nothing'}")
        lengths = [f[0] for f in fns]
        print(f"{crossing} includes cross a layer boundary; "
              f"{len(fns)} functions, median {statistics.median(lengths):g} lines, "
              f"longest: " + ", ".join(f"{n} {name} ({src})" for n, src, name in fns[:5]))
    for line in out:
        print(line)
    ok = not (bad or bad_names or long_fns)
    print("layers: " + ("ok" if ok else
                        f"{bad} wrong includes, {bad_names} repeated names, "
                        f"{len(long_fns)} functions over {limit} lines"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

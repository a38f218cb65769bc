"""wordnet_embed.py - the WordNet 3.0 noun hierarchy embedded in the Lorentz
model, for the recall bench's "wordnet" family.

    wordnet_embed.py OUT.f32 [--dim 10] [--epochs 20] [--data PATH]
    wordnet_embed.py --check [--data PATH]

Reads Debian's wordnet-base (/usr/share/wordnet/data.noun), takes every
noun synset and the transitive closure of its hypernym and instance
hypernym pointers (about 82,000 synsets, 740,000 edges), and trains an
embedding the way Nickel & Kiela (2018) do: for an edge (u, v), a softmax
over -distance between v and negatives drawn uniformly from all synsets,
Riemannian SGD on the hyperboloid (gradient through the inverse Minkowski
metric, projected on the tangent space, applied by the exponential map),
a burn-in of a tenth of the rate first. Curvature 1, float64.

The result is deterministic (fixed seed, one thread, fixed epoch count):
OUT.f32 holds N x dim float32 space components, one row per synset in
data.noun's order, and OUT.names the synsets' first lemmas. --check only
parses and builds the closure (no torch), for 'make check'.
"""
import argparse
import os
import sys
import time

DATA = "/usr/share/wordnet/data.noun"


def parse(path):
    """Synset offsets in file order, first lemma, hypernym (and instance
    hypernym) parents as indices."""
    offs, names, parents = [], [], []
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):  # licence header
                continue
            t = line.split()
            offs.append(t[0])
            w = int(t[3], 16)
            names.append(t[4])
            i = 4 + 2 * w
            p = int(t[i])
            ps = []
            for j in range(p):
                sym, off, pos = t[i + 1 + 4 * j], t[i + 2 + 4 * j], t[i + 3 + 4 * j]
                if sym in ("@", "@i") and pos == "n":
                    ps.append(off)
            parents.append(ps)
    idx = {o: k for k, o in enumerate(offs)}
    return names, [[idx[o] for o in ps] for ps in parents]


def closure(parents):
    """(child, ancestor) for every ancestor through hypernym pointers."""
    memo = [None] * len(parents)
    sys.setrecursionlimit(10000)

    def anc(u):
        if memo[u] is None:
            s = set()
            for p in parents[u]:
                s.add(p)
                s |= anc(p)
            memo[u] = s
        return memo[u]

    return [(u, a) for u in range(len(parents)) for a in sorted(anc(u))]


def train(n, edges, dim, epochs, negs=20, batch=2048, lr=1.0, seed=0):
    import torch
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    e = torch.tensor(edges, dtype=torch.long)
    x = torch.empty(n, dim + 1, dtype=torch.float64)
    x[:, 1:] = (torch.rand(n, dim, dtype=torch.float64) - 0.5) * 2e-3
    x[:, 0] = torch.sqrt(1 + (x[:, 1:] ** 2).sum(1))

    def lorentz_inner(a, b):
        return (a[..., 1:] * b[..., 1:]).sum(-1) - a[..., 0] * b[..., 0]

    burn = max(1, epochs // 10)
    t0 = time.time()
    for ep in range(epochs):
        rate = lr / 10 if ep < burn else lr
        perm = torch.randperm(len(e))
        total = 0.0
        for s in range(0, len(e), batch):
            b = e[perm[s:s + batch]]
            u = b[:, 0]
            v = torch.cat([b[:, 1:2], torch.randint(0, n, (len(b), negs))], 1)
            xu = x[u].clone().requires_grad_(True)
            xv = x[v].clone().requires_grad_(True)
            inner = -lorentz_inner(xu.unsqueeze(1), xv)
            d = torch.acosh(torch.clamp(inner, min=1 + 1e-12))
            loss = torch.nn.functional.cross_entropy(-d, torch.zeros(len(b), dtype=torch.long),
                                                     reduction="sum")
            loss.backward()
            total += loss.item()
            rows = torch.cat([u, v.reshape(-1)])
            g = torch.cat([xu.grad, xv.grad.reshape(-1, dim + 1)])
            grad = torch.zeros_like(x).index_add_(0, rows, g)
            touched = torch.unique(rows)
            p, h = x[touched], grad[touched]
            h[:, 0] = -h[:, 0]  # inverse Minkowski metric
            h = h + lorentz_inner(p, h).unsqueeze(1) * p  # tangent projection
            h = -rate * h
            nrm = torch.sqrt(torch.clamp(lorentz_inner(h, h), min=0)).unsqueeze(1)
            nrm = torch.clamp(nrm, max=1.0)  # at most one unit per step
            hn = torch.sqrt(torch.clamp(lorentz_inner(h, h), min=1e-30)).unsqueeze(1)
            dirn = h / hn
            q = torch.cosh(nrm) * p + torch.sinh(nrm) * dirn
            q[:, 0] = torch.sqrt(1 + (q[:, 1:] ** 2).sum(1))  # back on the sheet
            x[touched] = q
        r = torch.acosh(x[:, 0])
        print(f"epoch {ep + 1}/{epochs} loss {total / len(e):.4f} radius mean "
              f"{r.mean():.2f} max {r.max():.2f} ({time.time() - t0:.0f} s)", flush=True)
    return x[:, 1:].float().numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?")
    ap.add_argument("--dim", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(a.data):
        print(f"wordnet_embed: {a.data} missing (Debian package wordnet-base)")
        return 77
    names, parents = parse(a.data)
    edges = closure(parents)
    roots = [u for u, p in enumerate(parents) if not p]
    print(f"{len(names)} noun synsets, {len(edges)} closure edges, roots {[names[r] for r in roots]}")
    if a.check:
        ok = len(names) == 82115 and 700000 < len(edges) < 800000 and len(roots) == 1
        return 0 if ok else 1
    v = train(len(names), edges, a.dim, a.epochs)
    tmp = a.out + ".tmp"
    v.tofile(tmp)
    with open(a.out + ".names", "w") as f:
        f.write("\n".join(names) + "\n")
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

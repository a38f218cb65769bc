#!/usr/bin/python3
"""Reference HySAC encoder in PyTorch, for checking hydb's C forward pass.

Built from torch.nn pieces (Linear, LayerNorm, Conv2d, manual attention),
not from a model library, following the CLIP ViT / text transformer
definition: pre-LN blocks, quick_gelu, class token, causal text mask,
pooling at the first EOS, bias-free projections, then HySAC's lift onto
the hyperboloid (scale by alpha, exponential map at the origin).

Subcommands:
  make OUT [--size tiny|vit-l] [--seed N] [--patch-bias]
        write a random model file in hydb's format (safetensors + config)
  encode MODEL [--ids LIST]... [--pixels NPY]... [--dtype float64|float32]
        [--threads N] [--hysac hysac_model.pth]
        print one JSON object per input, like `hydb encode --json --features`
  bench MODEL [--batches 1,8] [--captions N] [--threads N]
        PyTorch's images/s and caption latency, for bench/bench_encoder.sh
  compare A.jsonl B.jsonl [--min-cos X] [--max-rel X]
        cosine and max relative error per input; exit 1 if out of bounds
"""
import argparse
import json
import math
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "U8": np.uint8,
          "F64": np.float64, "I64": np.int64}


# ---- safetensors -----------------------------------------------------------

def st_read(path):
    """Tensors (numpy, float32 for weights) and metadata of a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, e in header.items():
        lo, hi = e["data_offsets"]
        if e["dtype"] == "BF16":
            raw = np.frombuffer(blob, np.uint16, (hi - lo) // 2, base + lo)
            arr = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            dt = np.dtype(DTYPES[e["dtype"]])
            arr = np.frombuffer(blob, dt, (hi - lo) // dt.itemsize, base + lo)
        tensors[name] = arr.reshape(e["shape"])
    return tensors, meta


def st_write(path, tensors, meta):
    header, offset, parts = {}, 0, []
    names = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        b = arr.tobytes()
        header[name] = {"dtype": names[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(b)]}
        parts.append(b)
        offset += len(b)
    header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in parts:
            f.write(b)


# ---- random model files ----------------------------------------------------

SIZES = {
    # vision (width, layers, heads, mlp, image, patch), text (width, layers,
    # heads, mlp, vocab, context), embed
    "tiny": ((64, 2, 4, 128, 28, 7), (48, 2, 4, 96, 600, 77), 32),
    "vit-l": ((1024, 24, 16, 4096, 224, 14), (768, 12, 12, 3072, 49408, 77), 768),
}


def byte_symbols():
    """GPT-2's printable stand-ins for the 256 byte values."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def fake_merges(n):
    """n distinct, valid BPE merges: pairs of byte symbols, the second with
    or without the end-of-word mark (up to 2 * 256 * 256 of them)."""
    sym = [byte_symbols()[b] for b in range(256)]
    lines = []
    for a in sym:
        for b in sym:
            for end in ("", "</w>"):
                lines.append("%s %s%s" % (a, b, end))
                if len(lines) == n:
                    return "\n".join(lines) + "\n"
    raise ValueError("too many merges")


def random_model(size, seed, patch_bias):
    (vw, vl, vh, vm, img, p), (tw, tl, th, tm, vocab, ctx), emb = SIZES[size]
    rng = np.random.default_rng(seed)

    def lin(o, i):
        return (rng.standard_normal((o, i), np.float32) / math.sqrt(i))

    def vec(n, s=0.02, mean=0.0):
        return (mean + s * rng.standard_normal(n, np.float32)).astype(np.float32)

    t = {}

    def tower(pfx, w, layers, mlp):
        for i in range(layers):
            q = "%s.encoder.layers.%d." % (pfx, i)
            for ln in ("layer_norm1", "layer_norm2"):
                t[q + ln + ".weight"] = vec(w, 0.1, 1.0)
                t[q + ln + ".bias"] = vec(w, 0.1)
            for pr in ("q_proj", "k_proj", "v_proj", "out_proj"):
                t[q + "self_attn." + pr + ".weight"] = lin(w, w)
                t[q + "self_attn." + pr + ".bias"] = vec(w, 0.1)
            t[q + "mlp.fc1.weight"] = lin(mlp, w)
            t[q + "mlp.fc1.bias"] = vec(mlp, 0.1)
            t[q + "mlp.fc2.weight"] = lin(w, mlp)
            t[q + "mlp.fc2.bias"] = vec(w, 0.1)

    g = img // p
    e = "vision_model.embeddings."
    t[e + "class_embedding"] = vec(vw, 1.0)
    t[e + "patch_embedding.weight"] = (
        rng.standard_normal((vw, 3, p, p), np.float32) / math.sqrt(3 * p * p))
    if patch_bias:
        t[e + "patch_embedding.bias"] = vec(vw, 0.5)
    t[e + "position_embedding.weight"] = rng.standard_normal(
        (g * g + 1, vw), np.float32) * 0.5
    t["vision_model.pre_layrnorm.weight"] = vec(vw, 0.1, 1.0)
    t["vision_model.pre_layrnorm.bias"] = vec(vw, 0.1)
    tower("vision_model", vw, vl, vm)
    t["vision_model.post_layernorm.weight"] = vec(vw, 0.1, 1.0)
    t["vision_model.post_layernorm.bias"] = vec(vw, 0.1)
    # Features of norm ~3.5, so that alpha * |f| stays inside exp_map0's
    # clamp and radii differ between inputs.
    t["visual_projection.weight"] = lin(emb, vw) * (3.5 / math.sqrt(emb))
    e = "text_model.embeddings."
    t[e + "token_embedding.weight"] = rng.standard_normal(
        (vocab, tw), np.float32) * 0.5
    t[e + "position_embedding.weight"] = rng.standard_normal(
        (ctx, tw), np.float32) * 0.5
    tower("text_model", tw, tl, tm)
    t["text_model.final_layer_norm.weight"] = vec(tw, 0.1, 1.0)
    t["text_model.final_layer_norm.bias"] = vec(tw, 0.1)
    t["text_projection.weight"] = lin(emb, tw) * (3.5 / math.sqrt(emb))
    merges = fake_merges(vocab - 514).encode()
    t["tokenizer.merges"] = np.frombuffer(merges, np.uint8)
    cfg = {
        "format_version": 1, "name": "random-" + size,
        "vision": {"width": vw, "layers": vl, "heads": vh, "mlp": vm,
                   "image_size": img, "patch_size": p},
        "text": {"width": tw, "layers": tl, "heads": th, "mlp": tm,
                 "vocab_size": vocab, "context_length": ctx,
                 "bos_id": vocab - 2, "eos_id": vocab - 1},
        "embed_dim": emb, "ln_eps": 1e-5, "curvature": 2.3,
        "visual_alpha": 0.37, "textual_alpha": 0.29,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
    }
    return t, {"format": "hydb-model", "hydb": json.dumps(cfg)}


# ---- the reference model ---------------------------------------------------

def build(tensors, cfg, dtype, lora=None):
    """lora: {module name: (A, B)} applied unmerged, scaled by 1/r (HySAC's
    LoRA alpha of 1), on top of the base weights in tensors."""
    import torch
    from torch import nn
    from torch.nn import functional as F
    lora = lora or {}

    class LoRA(nn.Module):
        def __init__(self, base, a, b):
            super().__init__()
            self.base, self.a, self.b = base, a.to(dtype), b.to(dtype)
            self.scale = 1.0 / a.shape[0]

        def forward(self, x):
            if isinstance(self.base, nn.Conv2d):
                d = F.conv2d(x, self.a, stride=self.base.stride)
                d = F.conv2d(d, self.b)
            else:
                d = F.linear(F.linear(x, self.a), self.b)
            return self.base(x) + self.scale * d

    def wrap(mod, name):
        if name not in lora:
            return mod
        a, b = lora[name]
        return LoRA(mod, torch.from_numpy(np.array(a)), torch.from_numpy(np.array(b)))

    class Block(nn.Module):
        def __init__(self, w, heads, mlp, eps):
            super().__init__()
            self.heads = heads
            self.ln1 = nn.LayerNorm(w, eps=eps)
            self.ln2 = nn.LayerNorm(w, eps=eps)
            self.q, self.k, self.v, self.o = (nn.Linear(w, w) for _ in range(4))
            self.fc1 = nn.Linear(w, mlp)
            self.fc2 = nn.Linear(mlp, w)

        def forward(self, x, causal):
            b, n, w = x.shape
            d = w // self.heads
            h = self.ln1(x)

            def split(t):
                return t.view(b, n, self.heads, d).transpose(1, 2)
            q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
            s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
            if causal:
                mask = torch.ones(n, n, dtype=torch.bool).triu(1)
                s = s.masked_fill(mask, float("-inf"))
            a = torch.softmax(s, dim=-1) @ v
            x = x + self.o(a.transpose(1, 2).reshape(b, n, w))
            m = self.fc1(self.ln2(x))
            return x + self.fc2(m * torch.sigmoid(1.702 * m))

    def load_block(blk, pfx):
        for attr, name in (("ln1", "layer_norm1"), ("ln2", "layer_norm2"),
                           ("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"),
                           ("v", "self_attn.v_proj"), ("o", "self_attn.out_proj"),
                           ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2")):
            mod = getattr(blk, attr)
            mod.weight.data = T(pfx + name + ".weight")
            mod.bias.data = T(pfx + name + ".bias")
            setattr(blk, attr, wrap(mod, pfx + name))

    def T(name):
        return torch.from_numpy(np.array(tensors[name])).to(dtype)

    def tower(pfx, tc):
        blocks = nn.ModuleList()
        for i in range(tc["layers"]):
            blk = Block(tc["width"], tc["heads"], tc["mlp"], cfg["ln_eps"])
            load_block(blk, "%s.encoder.layers.%d." % (pfx, i))
            blocks.append(blk)
        return blocks.to(dtype)

    def ln(name, w):
        m = nn.LayerNorm(w, eps=cfg["ln_eps"]).to(dtype)
        m.weight.data, m.bias.data = T(name + ".weight"), T(name + ".bias")
        return m

    def proj(name, w):
        m = nn.Linear(w, cfg["embed_dim"], bias=False).to(dtype)
        m.weight.data = T(name)
        return m

    vc, tc = cfg["vision"], cfg["text"]
    vw, tw, p = vc["width"], tc["width"], vc["patch_size"]
    bias_name = "vision_model.embeddings.patch_embedding.bias"
    conv = nn.Conv2d(3, vw, p, stride=p, bias=bias_name in tensors).to(dtype)
    conv.weight.data = T("vision_model.embeddings.patch_embedding.weight")
    if bias_name in tensors:
        conv.bias.data = T(bias_name)
    V = dict(conv=wrap(conv, "vision_model.embeddings.patch_embedding"), cls=T("vision_model.embeddings.class_embedding"),
             pos=T("vision_model.embeddings.position_embedding.weight"),
             pre=ln("vision_model.pre_layrnorm", vw),
             blocks=tower("vision_model", vc),
             post=ln("vision_model.post_layernorm", vw),
             proj=proj("visual_projection.weight", vw))
    X = dict(tok=T("text_model.embeddings.token_embedding.weight"),
             pos=T("text_model.embeddings.position_embedding.weight"),
             blocks=tower("text_model", tc),
             final=ln("text_model.final_layer_norm", tw),
             proj=proj("text_projection.weight", tw))

    def vision(px):
        x = V["conv"](px).flatten(2).transpose(1, 2)
        cls = V["cls"].expand(x.shape[0], 1, -1)
        x = V["pre"](torch.cat([cls, x], 1) + V["pos"])
        for blk in V["blocks"]:
            x = blk(x, False)
        return V["proj"](V["post"](x[:, 0]))

    def text(ids):
        """ids: the full padded context; pooled at argmax as HF does."""
        ids = torch.tensor(ids)
        x = (X["tok"][ids] + X["pos"][:len(ids)])[None]
        for blk in X["blocks"]:
            x = blk(x, True)
        return X["proj"](X["final"](x[0, int(torch.argmax(ids))]))

    return vision, text


def lift(f, alpha, c):
    """HySAC: v = alpha f, exp_map0 with MERU's clamps; radius from origin."""
    v = np.asarray(f, np.float64) * alpha
    rc = math.sqrt(c) * np.linalg.norm(v)
    x = math.sinh(min(max(rc, 1e-8), math.asinh(2 ** 15))) * v / max(rc, 1e-8)
    r = math.asinh(math.sqrt(c) * np.linalg.norm(x)) / math.sqrt(c)
    return x, r


def hysac_checkpoint(path):
    """A HySAC state dict as HF-named base weights and unmerged LoRA pairs,
    in either peft key layout (0.4: lora_A.weight; 0.7: base_layer and
    lora_A.default.weight)."""
    import torch
    sd = torch.load(path, map_location="cpu")
    base, lora = {}, {}
    for k, v in sd.items():
        for prefix in ("visual.base_model.model.", "textual.base_model.model."):
            if k.startswith(prefix):
                break
        else:
            continue
        name = k[len(prefix):].replace(".base_layer.", ".")
        v = v.float().numpy()
        for tag, which in ((".lora_A.weight", 0), (".lora_A.default.weight", 0),
                           (".lora_B.weight", 1), (".lora_B.default.weight", 1)):
            if name.endswith(tag):
                pair = lora.setdefault(name[:-len(tag)], [None, None])
                pair[which] = v
                break
        else:
            base[name] = v
    return base, {m: tuple(ab) for m, ab in lora.items()}


def cmd_encode(a):
    import torch
    torch.set_num_threads(a.threads)
    tensors, meta = st_read(a.model)
    cfg = json.loads(meta["hydb"])
    dtype = getattr(torch, a.dtype)
    lora = None
    if a.hysac:
        # Config from the converted model, weights from the checkpoint.
        tensors, lora = hysac_checkpoint(a.hysac)
    vision, text = build(tensors, cfg, dtype, lora)
    c = cfg["curvature"]
    out = []
    with torch.no_grad():
        for s in a.ids:
            ids = [int(v) for v in s.split(",")]
            ctx = cfg["text"]["context_length"]
            ids = ids + [cfg["text"]["eos_id"]] * (ctx - len(ids))
            f = text(ids).double().numpy()
            out.append((s, f, cfg["textual_alpha"]))
        for path in a.pixels:
            px = torch.from_numpy(np.load(path)).to(dtype)[None]
            f = vision(px)[0].double().numpy()
            out.append((path, f, cfg["visual_alpha"]))
    for name, f, alpha in out:
        x, r = lift(f, alpha, c)
        print(json.dumps({"input": name, "embedding": x.tolist(), "radius": r,
                          "features": f.tolist()}))


def cmd_bench(a):
    """Images/s at the given batch sizes and caption latency, float32."""
    import resource
    import time
    import torch
    torch.set_num_threads(a.threads)
    tensors, meta = st_read(a.model)
    cfg = json.loads(meta["hydb"])
    vision, text = build(tensors, cfg, torch.float32)
    del tensors
    s = cfg["vision"]["image_size"]
    tc = cfg["text"]
    ids = [tc["bos_id"]] + [320 + 37 * i for i in range(1, 13)] + [tc["eos_id"]]
    ids += [tc["eos_id"]] * (tc["context_length"] - len(ids))
    with torch.no_grad():
        for b in [int(v) for v in a.batches.split(",")]:
            px = torch.rand(b, 3, s, s) - 0.5
            best = 1e30
            for _ in range(a.repeat):
                t = time.time()
                vision(px)
                best = min(best, time.time() - t)
            print("images_per_s_batch%d %.4f" % (b, b / best))
        text(ids)
        t = time.time()
        for _ in range(a.captions):
            text(ids)
        dt = (time.time() - t) / a.captions
        print("captions_per_s %.2f" % (1 / dt))
        print("caption_ms %.2f" % (dt * 1e3))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("peak_rss_mb %.0f" % (rss / 1024))


def cmd_make(a):
    t, meta = random_model(a.size, a.seed, a.patch_bias)
    st_write(a.out, t, meta)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def compare_vec(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    rel = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
    return cos, rel


def cmd_compare(a):
    got, ref = read_jsonl(a.got), read_jsonl(a.ref)
    if len(got) != len(ref):
        print("different number of inputs: %d vs %d" % (len(got), len(ref)))
        return 1
    worst_cos, worst_rel, bad = 1.0, 0.0, 0
    for g, r in zip(got, ref):
        for key in ("features", "embedding"):
            cos, rel = compare_vec(g[key], r[key])
            worst_cos, worst_rel = min(worst_cos, cos), max(worst_rel, rel)
            ok = cos >= a.min_cos and rel <= a.max_rel
            bad += not ok
            print("%-4s %-9s cos %.9f  max-rel %.3g  %s" % (
                "ok" if ok else "FAIL", key, cos, rel, r["input"][-40:]))
        rr = abs(g["radius"] - r["radius"]) / abs(r["radius"])
        worst_rel = max(worst_rel, rr)
        bad += rr > a.max_rel
        print("%-4s radius    %.9g vs %.9g rel %.3g" % (
            "ok" if rr <= a.max_rel else "FAIL", g["radius"], r["radius"], rr))
    print("worst: cosine %.9f, max relative error %.3g (%d inputs)" % (
        worst_cos, worst_rel, len(ref)))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    m.add_argument("--size", choices=sorted(SIZES), default="tiny")
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--patch-bias", action="store_true")
    e = sub.add_parser("encode")
    e.add_argument("model")
    e.add_argument("--ids", action="append", default=[])
    e.add_argument("--pixels", action="append", default=[])
    e.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--hysac", help="weights from this HySAC checkpoint "
                   "(hysac_model.pth), LoRA unmerged; MODEL gives the config")
    b = sub.add_parser("bench")
    b.add_argument("model")
    b.add_argument("--batches", default="1,8")
    b.add_argument("--captions", type=int, default=20)
    b.add_argument("--repeat", type=int, default=2)
    b.add_argument("--threads", type=int, default=2)
    c = sub.add_parser("compare")
    c.add_argument("got")
    c.add_argument("ref")
    c.add_argument("--min-cos", type=float, default=0.99999)
    c.add_argument("--max-rel", type=float, default=1e-4)
    a = ap.parse_args()
    return {"make": cmd_make, "encode": cmd_encode, "bench": cmd_bench,
            "compare": cmd_compare}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())

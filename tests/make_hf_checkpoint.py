#!/usr/bin/python3
"""Test fixtures for hydb-convert.

  make_hf_checkpoint.py write OUT --layout peft04|peft07 [--seed N] [--clip-bpe GZ]
      OUT/clip: a random Hugging Face CLIP folder at tiny widths (config.json,
      pytorch_model.bin for peft04 / model.safetensors for peft07, vocab.json
      and merges.txt, or CLIP's bpe_simple_vocab_16e6.txt.gz with --clip-bpe);
      OUT/hysac_model.pth and OUT/hysac_bounds.json: a HySAC checkpoint in
      the given peft layout with nonzero LoRA B.
  make_hf_checkpoint.py verify MODEL OUT
      Check MODEL (converted from OUT) against the checkpoint, computing the
      LoRA merge W + (1/r) B A independently with torch.
  make_hf_checkpoint.py corrupt MODEL DIR KIND...
      Write damaged copies of MODEL as DIR/bad-KIND.hydb.
"""

import json
import math
import os
import shutil
import struct
import sys
from importlib.machinery import SourceFileLoader

import numpy as np

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("HYDB_SRCDIR", os.path.dirname(HERE))
conv = SourceFileLoader("hydb_convert",
                        os.path.join(SRCDIR, "tools", "hydb-convert")).load_module()

LORA_TARGETS = ("k_proj", "v_proj", "out_proj", "fc1", "fc2", "patch_embedding")


def real_merges(gz):
    import gzip
    with gzip.open(gz) as f:
        return f.read().decode("utf-8").split("\n")[1:1 + 48894]


def write_fixture(out, layout, seed, clip_bpe):
    import torch
    corpus = os.path.join(SRCDIR, "tools", "tiny_corpus.txt")
    hf_cfg, clip, merges, hysac, bounds = conv.tiny_checkpoint(seed, layout, corpus)
    if clip_bpe:
        # Full CLIP vocabulary: the embedding table grows to 49408 rows.
        merges = real_merges(clip_bpe)
        vocab = 512 + len(merges) + 2
        hf_cfg = conv.tiny_hf_config(vocab)
        rng = np.random.default_rng(seed)
        clip = conv.random_clip_weights(hf_cfg, rng)
        hysac = conv.random_hysac_state(clip, rng, layout)
    d = os.path.join(out, "clip")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf_cfg, f, indent=1)
    if layout == "peft04":
        torch.save({k: torch.from_numpy(np.array(v)) for k, v in clip.items()},
                   os.path.join(d, "pytorch_model.bin"))
    else:
        items = [(k, np.ascontiguousarray(v, np.float32).tobytes(), "F32", np.shape(v))
                 for k, v in clip.items() if k != "text_model.embeddings.position_ids"]
        conv.write_safetensors(os.path.join(d, "model.safetensors"), items, {"format": "pt"})
    if clip_bpe:
        shutil.copy(clip_bpe, os.path.join(d, "bpe_simple_vocab_16e6.txt.gz"))
    else:
        with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
        with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(conv.vocab_from_merges(merges), f)
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in hysac.items()},
               os.path.join(out, "hysac_model.pth"))
    with open(os.path.join(out, "hysac_bounds.json"), "w") as f:
        json.dump(bounds, f)


def hf_name(key):
    for prefix in ("visual.base_model.model.", "textual.base_model.model."):
        if key.startswith(prefix):
            return key[len(prefix):].replace(".base_layer.", ".")
    return None


def expected_weights(sd):
    """HF-named weights with LoRA merged, in torch float32."""
    import torch  # noqa: F401 (tensor methods below)
    out, lora = {}, {}
    for k, v in sd.items():
        name = hf_name(k)
        if name is None or name.endswith("position_ids"):
            continue
        for tag in (".lora_A.weight", ".lora_A.default.weight",
                    ".lora_B.weight", ".lora_B.default.weight"):
            if name.endswith(tag):
                lora.setdefault(name[:-len(tag)], {})[tag[6]] = v
                break
        else:
            out[name] = v.float()
    assert lora, "checkpoint has no LoRA tensors"
    for mod, ab in lora.items():
        assert mod.rsplit(".", 1)[1] in LORA_TARGETS, mod
        w = out[mod + ".weight"]
        a, b = ab["A"].float(), ab["B"].float()
        r = a.shape[0]
        assert float(b.abs().max()) > 0, "LoRA B is zero: the merge would go untested"
        delta = b.reshape(w.shape[0], r) @ a.reshape(r, -1)
        out[mod + ".weight"] = w + delta.reshape(w.shape) / r
    return out


def verify(model, out, tol):
    import torch
    tensors, meta = conv.read_safetensors(model)
    cfg = json.loads(meta["hydb"])
    assert meta["format"] == "hydb-model"
    sd = torch.load(os.path.join(out, "hysac_model.pth"))
    want = expected_weights(sd)
    n = 0
    for name, w in want.items():
        got = torch.from_numpy(np.array(tensors[name], np.float32))
        err = float((got - w).abs().max())
        scale = max(1.0, float(w.abs().max()))
        if err > tol * scale:
            sys.exit(f"verify: {name}: max error {err} over {tol * scale}")
        n += 1
    assert n == len(tensors) - 1, (n, len(tensors))
    for key, field in (("curv", "curvature"), ("visual_alpha", "visual_alpha"),
                       ("textual_alpha", "textual_alpha")):
        exp = math.exp(float(sd[key]))
        if abs(cfg[field] - exp) > 1e-12 * exp:
            sys.exit(f"verify: {field} {cfg[field]} != exp({key}) = {exp}")
    with open(os.path.join(out, "hysac_bounds.json")) as f:
        if cfg["bounds"] != json.load(f):
            sys.exit("verify: bounds differ from hysac_bounds.json")
    merges = bytes(tensors["tokenizer.merges"]).decode("utf-8").split("\n")
    assert len(merges) == cfg["text"]["vocab_size"] - 514, len(merges)
    print(f"verify: {n} tensors match, {len(merges)} merges")
    print(f"curvature={math.exp(float(sd['curv']))!r}")


def read_raw(path):
    with open(path, "rb") as f:
        raw = f.read()
    (hl,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + hl]), raw[8 + hl:]


def write_raw(path, header, data, header_bytes=None):
    text = header_bytes if header_bytes is not None else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def first(header, suffix):
    return next(k for k in header if k.endswith(suffix))


def corrupt(kind, src, dest):
    with open(src, "rb") as f:
        raw = f.read()
    h, data = read_raw(src)
    if kind.startswith("truncate"):
        cut = {"truncate4": 4, "truncate-header": 8 + 40,
               "truncate-half": len(raw) // 2, "truncate-1": len(raw) - 1}[kind]
        with open(dest, "wb") as f:
            f.write(raw[:cut])
        return
    if kind == "wrong-shape":
        e = h[first(h, "layers.0.self_attn.k_proj.weight")]
        e["shape"] = [e["shape"][0] // 2, e["shape"][1] * 2]
    elif kind == "huge-header":
        with open(dest, "wb") as f:
            f.write(struct.pack("<Q", 1 << 62) + raw[8:])
        return
    elif kind == "huge-shape":
        h[first(h, "class_embedding")]["shape"] = [1 << 40, 1 << 40]
    elif kind == "huge-offset":
        e = h[first(h, "class_embedding")]
        e["data_offsets"] = [e["data_offsets"][0], 1 << 62]
    elif kind == "overlap":
        a, b = h[first(h, "pre_layrnorm.weight")], h[first(h, "pre_layrnorm.bias")]
        b["data_offsets"] = a["data_offsets"]
    elif kind == "bad-utf8":
        text = json.dumps(h).encode().replace(b"hydb-model", b"hydb-\xffodel")
        write_raw(dest, None, data, text)
        return
    elif kind == "bad-dtype":
        h[first(h, "final_layer_norm.bias")]["dtype"] = "F31"
    elif kind == "missing-tensor":
        key = first(h, "visual_projection.weight")
        h["unused." + key] = h.pop(key)
    elif kind == "newer-version":
        cfg = json.loads(h["__metadata__"]["hydb"])
        cfg["format_version"] = 99
        h["__metadata__"]["hydb"] = json.dumps(cfg)
    else:
        sys.exit(f"unknown corruption {kind}")
    write_raw(dest, h, data)


def main(argv):
    if argv[:1] == ["write"]:
        import argparse
        ap = argparse.ArgumentParser()
        ap.add_argument("out")
        ap.add_argument("--layout", default="peft04")
        ap.add_argument("--seed", type=int, default=0)
        ap.add_argument("--clip-bpe")
        a = ap.parse_args(argv[1:])
        write_fixture(a.out, a.layout, a.seed, a.clip_bpe)
    elif argv[:1] == ["verify"] and len(argv) in (3, 4):
        verify(argv[1], argv[2], float(argv[3]) if len(argv) == 4 else 1e-6)
    elif argv[:1] == ["corrupt"] and len(argv) >= 4:
        for kind in argv[3:]:
            corrupt(kind, argv[1], os.path.join(argv[2], f"bad-{kind}.hydb"))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])

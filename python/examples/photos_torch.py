#!/usr/bin/python3
"""The sample photos and captions embedded twice, by the PyTorch reference
model the tests use (tests/ref_hysac.py: the same weights, in torch.nn) and
by hydb.Model, both added to one database each and queried the same way.
Shows that embeddings made in PyTorch go into hydb as numpy arrays, and
that hydb's own encoder agrees with PyTorch.

usage: photos_torch.py MODEL.safetensors
A demo model: /usr/bin/python3 tools/hydb-convert --tiny model.safetensors --seed 1
(random weights: the rankings are not meaningful, the pipeline is real).
Token ids and pixel tensors come from `hydb encode --tokens` and
`hydb preprocess --tensor`, so that both models see the same inputs.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

import hydb

PHOTOS = "/usr/lib/python3/dist-packages/skimage/data"
HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(TOP, "tests"))
import ref_hysac  # noqa: E402  (the tests' PyTorch reference model)

HYDB = os.environ.get("HYDB", "hydb")


def torch_embeddings(model_path, files, captions, work):
    """Embeddings and radii from the PyTorch reference model."""
    tensors, meta = ref_hysac.st_read(model_path)
    cfg = json.loads(meta["hydb"])
    vision, text = ref_hysac.build(tensors, cfg, torch.float32)
    c, ctx, eos = cfg["curvature"], cfg["text"]["context_length"], cfg["text"]["eos_id"]
    img, img_r, txt, txt_r = [], [], [], []
    with torch.no_grad():
        for i, f in enumerate(files):
            px = os.path.join(work, "px%d.npy" % i)
            subprocess.run([HYDB, "preprocess", f, "--tensor", px, "--size", str(cfg["vision"]["image_size"])],
                           check=True)
            feat = vision(torch.from_numpy(np.load(px)).float()[None])[0].double().numpy()
            x, r = ref_hysac.lift(feat, cfg["visual_alpha"], c)
            img.append(x)
            img_r.append(r)
        for cap in captions:
            out = subprocess.run([HYDB, "encode", "--model", model_path, "--text", cap, "--tokens"],
                                 check=True, capture_output=True, text=True).stdout
            ids = [int(t) for t in out.rsplit("\t", 1)[1].split()]
            feat = text(ids + [eos] * (ctx - len(ids))).double().numpy()
            x, r = ref_hysac.lift(feat, cfg["textual_alpha"], c)
            txt.append(x)
            txt_r.append(r)
    return (np.array(img, np.float32), np.array(img_r), np.array(txt, np.float32), np.array(txt_r), c)


def fill(db_dir, c, files, captions, img, txt):
    db = hydb.open(db_dir, dim=img.shape[1], curvature=c, create=True)
    n = len(files)
    db.add([os.path.basename(f) for f in files], img, modalities="image", captions=captions,
           items=range(1, n + 1))
    db.add(["text:%d" % i for i in range(n)], txt, modalities="text", captions=captions,
           items=range(1, n + 1))
    return db


def main():
    model_path = sys.argv[1]
    rows = [line.rstrip("\n").split("|", 1) for line in open(os.path.join(TOP, "examples", "demo-captions.txt"))
            if "|" in line]
    files = [os.path.join(PHOTOS, f) for f, _ in rows]
    captions = [cap for _, cap in rows]
    work = tempfile.mkdtemp()
    img_t, img_rt, txt_t, txt_rt, c = torch_embeddings(model_path, files, captions, work)
    with hydb.Model(model_path) as m:
        img_h, img_rh = m.encode_images(files)
        txt_h, txt_rh = m.encode_text(captions)
    cos = lambda a, b: np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    print("PyTorch vs hydb.Model: image cosine >= %.6f, caption cosine >= %.6f, max |radius difference| %.2e"
          % (cos(img_t, img_h).min(), cos(txt_t, txt_h).min(),
             max(np.abs(img_rt - img_rh).max(), np.abs(txt_rt - txt_rh).max())))
    queries = ["a cat", "a rocket on a launch pad"]
    with hydb.Model(model_path) as m:
        q, _ = m.encode_text(queries)
    for name, img, txt in (("PyTorch", img_t, txt_t), ("hydb.Model", img_h, txt_h)):
        with fill(os.path.join(work, name + ".hydb"), c, files, captions, img, txt) as db:
            res = db.search(q, k=3, modality="image")
            for text, keys in zip(queries, res.keys):
                print("%-10s %-26s -> %s" % (name, text, ", ".join(keys)))


if __name__ == "__main__":
    main()

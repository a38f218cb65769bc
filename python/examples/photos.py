#!/usr/bin/python3
"""Embed the sample photos (python3-skimage) and their captions
(examples/demo-captions.txt) with hydb.Model, add them to a database and
query it: text -> images, safe-only and redirected.

usage: photos.py MODEL.safetensors [DB_DIR]
A demo model: /usr/bin/python3 tools/hydb-convert --tiny model.safetensors --seed 1
(random weights: the rankings are not meaningful, the pipeline is real).
"""
import os
import sys
import tempfile

import hydb

PHOTOS = "/usr/lib/python3/dist-packages/skimage/data"
HERE = os.path.dirname(os.path.abspath(__file__))
CAPTIONS = os.path.join(HERE, "..", "..", "examples", "demo-captions.txt")


def main():
    model_path = sys.argv[1]
    db_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(tempfile.mkdtemp(), "photos.hydb")
    rows = [line.rstrip("\n").split("|", 1) for line in open(CAPTIONS) if "|" in line]
    files = [os.path.join(PHOTOS, f) for f, _ in rows]
    caps = [c for _, c in rows]
    with hydb.Model(model_path) as model:
        img, img_r = model.encode_images(files)
        txt, txt_r = model.encode_text(caps)
        ib = model.bound("image")
        labels = ["unknown"] * len(files) if ib != ib else ["safe" if r <= ib else "unsafe" for r in img_r]
        with hydb.open(db_dir, dim=model.dim, curvature=model.curvature, create=True) as db:
            n = len(files)
            db.add([os.path.basename(f) for f in files], img, modalities="image", labels=labels,
                   captions=caps, items=range(1, n + 1))
            db.add(["text:%d" % i for i in range(n)], txt, modalities="text", captions=caps,
                   items=range(1, n + 1))
            print("%d photos and %d captions in %s (dim %d); radii: images %.3f..%.3f, captions %.3f..%.3f"
                  % (n, n, db_dir, db.dim, img_r.min(), img_r.max(), txt_r.min(), txt_r.max()))
            q, _ = model.encode_text(["a cat", "a rocket on a launch pad"])
            res = db.search(q, k=3, modality="image")
            for text, keys, d in zip(["a cat", "a rocket on a launch pad"], res.keys, res.distances):
                print("%-26s -> %s" % (text, ", ".join("%s (%.3f)" % (k, x) for k, x in zip(keys, d))))
            res = db.search(q[0], k=3, modality="image", redirect="hysac", bound=0.5)
            print("redirected 'a cat' (radius %.3f -> %.3f): %s" % (
                res.query_radius, res.searched_radius, ", ".join(k for k in res.keys if k)))
            print("stats:", db.stats()["groups"], "check ok:", db.check()["ok"])


if __name__ == "__main__":
    main()

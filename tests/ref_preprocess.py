#!/usr/bin/python3
"""Compare `hydb preprocess` with the reference CLIP pipeline.

The reference is Hugging Face CLIPImageProcessor (openai/clip-vit-large-
patch14) written with PIL and numpy calls: convert("RGB"), resize of the
shorter side to SIZE with Image.BICUBIC (long side int(SIZE*long/short)),
centre crop with (dim - SIZE) // 2 offsets, rescale by 1/255 in float64 then
float32, normalise in float32.

usage: ref_preprocess.py HYDB_BINARY WORKDIR IMAGE...
Prints, per image, the maximum absolute difference of the decoded pixels,
the uint8 crop and the normalised tensor. Exit 0 if every crop is within one
level (and decoding exact), 1 otherwise.
"""
import os
import subprocess
import sys

import numpy as np
from PIL import Image

SIZE = 224
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def reference(path):
    im = Image.open(path).convert("RGB")
    w, h = im.size
    short, long_ = (w, h) if w <= h else (h, w)
    new_long = int(SIZE * long_ / short)
    nw, nh = (SIZE, new_long) if w <= h else (new_long, SIZE)
    arr = np.asarray(im.resize((nw, nh), resample=Image.BICUBIC))
    top, left = (nh - SIZE) // 2, (nw - SIZE) // 2
    crop = arr[top:top + SIZE, left:left + SIZE]
    x = (crop.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = ((x - MEAN) / STD).transpose(2, 0, 1)
    return np.asarray(im), crop, x


def run_hydb(hydb, work, path):
    dec, crop, tensor = (os.path.join(work, n) for n in ("dec.png", "crop.png", "t.npy"))
    for args in (["--decode-only", "-o", dec], ["-o", crop, "--tensor", tensor]):
        subprocess.run([hydb, "preprocess", path] + args, check=True)
    return (np.asarray(Image.open(dec).convert("RGB")),
            np.asarray(Image.open(crop).convert("RGB")), np.load(tensor))


def maxdiff(a, b):
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def main():
    hydb, work, images = sys.argv[1], sys.argv[2], sys.argv[3:]
    ok = True
    print("%-28s %9s %7s %5s %10s" % ("image", "size", "decode", "crop", "tensor"))
    for path in images:
        ref = reference(path)
        got = run_hydb(hydb, work, path)
        d = [maxdiff(g, r) for g, r in zip(got, ref)]
        size = "%dx%d" % (ref[0].shape[1], ref[0].shape[0])
        print("%-28s %9s %7g %5g %10.3g" % (os.path.basename(path), size, d[0], d[1], d[2]))
        ok = ok and d[0] == 0 and d[1] <= 1 and d[2] <= 1.01 / 255 / float(STD.min())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Regenerate the small test images in this directory (deterministic).

Run with Debian's /usr/bin/python3 (numpy, PIL). PNG variants PIL cannot
write (16-bit colour, low bit depths, Adam7 interlacing) are encoded here
directly from the PNG specification.
"""
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

OUT = os.path.dirname(os.path.abspath(__file__))

# Adam7 passes: (x start, y start, x step, y step)
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(kind, data):
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def sub_filter(raw, bpp):
    """PNG filter type 1: each byte minus the byte one pixel to its left."""
    a = np.frombuffer(raw, dtype=np.uint8).astype(np.int32)
    left = np.concatenate([np.zeros(bpp, dtype=np.int32), a[:-bpp]])
    return b"\x01" + ((a - left) & 0xFF).astype(np.uint8).tobytes()


def pack_rows(samples, depth, bpp):
    """samples: (h, w*channels) integers -> Sub-filtered scanlines."""
    out = b""
    for row in samples:
        if depth == 16:
            raw = row.astype(">u2").tobytes()
        elif depth == 8:
            raw = row.astype(np.uint8).tobytes()
        else:
            per = 8 // depth
            pad = (-len(row)) % per
            r = np.concatenate([row, np.zeros(pad, dtype=row.dtype)])
            r = r.reshape(-1, per).astype(np.uint16)
            shifts = np.array([8 - depth * (i + 1) for i in range(per)])
            raw = (r << shifts).sum(axis=1).astype(np.uint8).tobytes()
        out += sub_filter(raw, bpp)
    return out


def write_png(name, arr, color_type, depth, interlace=False, extra=b""):
    """arr: (h, w, channels) array of sample values."""
    h, w, ch = arr.shape
    bpp = max(1, ch * depth // 8)
    if interlace:
        data = b""
        for x0, y0, dx, dy in ADAM7:
            sub = arr[y0::dy, x0::dx]
            if sub.size:
                data += pack_rows(sub.reshape(sub.shape[0], -1), depth, bpp)
    else:
        data = pack_rows(arr.reshape(h, -1), depth, bpp)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, int(interlace))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra +
           chunk(b"IDAT", zlib.compress(data, 9)) + chunk(b"IEND", b""))
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(png)


def field(w, h, lo, hi, phase):
    """A posterised non-separable pattern spanning [lo, hi]: flat areas and
    sharp edges (which make the bicubic kernel overshoot and clip), and
    few distinct values so that the files stay small."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.5 + 0.25 * np.sin(x / 7.0 + phase) + 0.25 * np.cos((x + 2 * y) / 11.0 - phase)
    v += 0.2 * ((x.astype(int) // 9 + y.astype(int) // 9) % 2) - 0.1
    v = np.floor(np.clip(v, 0.0, 1.0) * 11.999) / 11.0
    return np.clip(lo + (hi - lo) * v, lo, hi).round().astype(np.int64)


def rgb_field(w, h, hi):
    return np.stack([field(w, h, 0, hi, p) for p in (0.0, 1.3, 2.6)], axis=2)


def main():
    w, h = 240, 229   # downscaled to 234x224
    sw, sh = 97, 61   # upscaled to 356x224
    write_png("rgb16.png", rgb_field(sw, 250, 65535), 2, 16)
    write_png("rgba16.png", np.dstack([rgb_field(sw, sh, 65535),
                                       field(sw, sh, 0, 65535, 0.7)]), 6, 16)
    write_png("grey16.png", field(sw, sh, 0, 600, 0.4)[..., None], 0, 16)
    write_png("ga16.png", np.dstack([field(sw, sh, 0, 65535, 0.1),
                                     field(sw, sh, 0, 65535, 2.0)]), 4, 16)
    write_png("grey4.png", field(sw, sh, 0, 15, 0.9)[..., None], 0, 4)
    write_png("grey2_trns.png", field(sw, sh, 0, 3, 0.2)[..., None], 0, 2,
              extra=chunk(b"tRNS", struct.pack(">H", 1)))
    write_png("grey1.png", field(sw, sh, 0, 1, 1.1)[..., None], 0, 1)
    write_png("interlaced_rgb.png", rgb_field(w, h, 255), 2, 8, interlace=True)
    pal = np.array([[(i * 37) % 256, (i * 91 + 20) % 256, 255 - i * 16] for i in range(16)],
                   dtype=np.uint8)
    plte = chunk(b"PLTE", pal.tobytes())
    trns = chunk(b"tRNS", bytes(range(0, 256, 16)))
    write_png("palette4_trns.png", field(w, h, 0, 15, 0.5)[..., None], 3, 4,
              extra=plte + trns)
    write_png("palette8_interlaced.png", field(sw, sh, 0, 15, 1.7)[..., None], 3, 8,
              interlace=True, extra=plte)

    Image.fromarray(field(sw, 260, 0, 255, 0.3).astype(np.uint8), "L").save(
        os.path.join(OUT, "grey8_tall.png"))
    Image.fromarray(np.dstack([field(sw, sh, 0, 255, 0.3), field(sw, sh, 0, 255, 2.3)])
                    .astype(np.uint8), "LA").save(os.path.join(OUT, "ga8.png"))
    Image.fromarray(np.dstack([rgb_field(sw, sh, 255), field(sw, sh, 0, 255, 1.0)])
                    .astype(np.uint8), "RGBA").save(os.path.join(OUT, "rgba8.png"))
    Image.fromarray(np.full((1, 1, 3), (200, 30, 90), np.uint8)).save(
        os.path.join(OUT, "one_pixel.png"))
    # Short side already 224: Pillow skips both passes, only the crop acts.
    write_png("exact224.png", rgb_field(224, 232, 255), 2, 8)

    rgb = Image.fromarray(rgb_field(w, h, 255).astype(np.uint8))
    rgb.save(os.path.join(OUT, "photo420.jpg"), quality=70)
    small = rgb.resize((sw, sh))
    small.save(os.path.join(OUT, "progressive.jpg"), quality=80, progressive=True,
               subsampling=0)
    small.convert("L").save(os.path.join(OUT, "grey.jpg"), quality=85)
    rgb.convert("CMYK").resize((sw, sh)).save(os.path.join(OUT, "cmyk.jpg"), quality=90)
    rgb.resize((sw, sh)).save(os.path.join(OUT, "lossy.webp"), quality=80)
    Image.fromarray(np.dstack([rgb_field(sw, sh, 255), field(sw, sh, 0, 255, 1.0)])
                    .astype(np.uint8), "RGBA").save(os.path.join(OUT, "lossless_alpha.webp"),
                                                    lossless=True)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT)
                if not f.endswith(".py"))
    print("total bytes:", total, file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Write the fuzz seed corpora: tests/fuzz/corpus/<target>/seed-*.

Seeds are tiny valid (and a few nearly valid) inputs of each format, so
that the fuzzers start past the magic bytes. Regression inputs from past
findings live next to them as regress-* and are never rewritten here.

Usage: [HYDB=path/to/hydb] make_seeds.py [SRCDIR]
(default SRCDIR: the tree this script is in; the lmdb seeds are real data
files written by the hydb program named by HYDB)
"""
import ctypes
import json
import os
import shutil
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..")
CORPUS = os.path.join(SRC, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def params(dim, coords=0, batch=4, skip=False):
    """The import targets' two parameter bytes (see fuzz_import.c)."""
    return bytes([(dim - 1) | coords << 3, (batch - 1) | (16 if skip else 0)])


def npy(arr, version=1):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }" % (
        arr.dtype.str, arr.shape[0], arr.shape[1])
    pre = 10 if version == 1 else 12
    hdr += " " * ((64 - (pre + len(hdr) + 1) % 64) % 64) + "\n"
    head = b"\x93NUMPY" + bytes([version, 0])
    head += struct.pack("<H" if version == 1 else "<I", len(hdr))
    return head + hdr.encode("latin1") + arr.tobytes()


def lorentz_rows(n, dim):
    """Points with time component first: x0 = sqrt(1 + |x|^2) at c = 1."""
    x = np.linspace(-1, 1, n * dim).reshape(n, dim)
    return np.hstack([np.sqrt(1 + (x * x).sum(1, keepdims=True)), x])


def import_seeds():
    a = np.arange(12, dtype="<f4").reshape(3, 4) / 7
    put("npy", "f4", params(4) + npy(a))
    put("npy", "f8-v2", params(2, skip=True) + npy(a[:, :2].astype("<f8"), 2))
    put("npy", "time", params(3, coords=1) + npy(lorentz_rows(2, 3).astype("<f8")))
    put("npy", "poincare", params(2, coords=2, batch=1) + npy((a[:, :2] / 20).astype("<f4")))
    rows = b"".join(struct.pack("<i", 4) + r.tobytes() for r in a)
    put("fvecs", "f4", params(4) + rows)
    put("fvecs", "time", params(3, coords=1, batch=1) +
        b"".join(struct.pack("<i", 4) + r.astype("<f4").tobytes() for r in lorentz_rows(2, 3)))
    lines = [
        {"key": "a", "vector": [0.1, 0.2, 0.3]},
        {"key": "b\u00e9", "vector": [1e-3, -2, 3.5e2], "caption": "a cat",
         "modality": "image", "label": "safe", "meta": {"src": [1, 2]}, "item": 9},
        {"key": "c", "vector": [0, 0, 0], "caption": None, "label": "unsafe",
         "modality": "text", "meta": None},
    ]
    text = "\n".join(json.dumps(l) for l in lines) + "\n\n  \r\n"
    put("jsonl", "rows", params(3) + text.encode())
    put("jsonl", "time", params(2, coords=1, batch=2, skip=True) + (
        '{"key": "t", "vector": [%r, 0.5, -0.25]}\n' % (1 + 0.25 + 0.0625) ** 0.5).encode())
    put("jsonl", "poincare", params(2, coords=2) + b'{"key":"p","vector":[0.5,-0.25]}')


def json_seeds():
    docs = {
        "object": '{"a": [1, -2.5e-3, true, false, null], "b": {"c": "d\\n\\u00e9"}}',
        "escapes": '"\\ud83d\\ude00 \\" \\\\ \\/ \\b\\f\\n\\r\\t \\u0000"',
        "nested": "[[[[{\"x\":[]}]]]]",
        "numbers": "[0, -0, 1e308, 123456789012345678901234, 0.5E+2, -1E-2]",
        "dup": '{"k": 1, "k": 2, "": {}}',
    }
    for name, text in docs.items():
        put("json", name, text.encode())


def safetensors(items, meta):
    """items: (name, bytes, dtype, shape); data packed in order."""
    header, off, blob = {}, 0, b""
    if meta is not None:
        header["__metadata__"] = meta
    for name, data, dt, shape in items:
        header[name] = {"dtype": dt, "shape": list(shape),
                        "data_offsets": [off, off + len(data)]}
        off += len(data)
        blob += data
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob


MERGES = ["t h", "th e</w>", "c a", "ca t</w>"]


def tiny_model():
    """The smallest model hydb_model_open accepts: width 4, one layer per
    tower, 2x2 image of 1x1 patches, 4 merges. Mixed F32/F16/BF16 storage."""
    W, MLP, E, CTX, P, IMG = 4, 8, 2, 4, 1, 2
    vocab = 512 + len(MERGES) + 2
    cfg = {"format_version": 1,
           "vision": {"width": W, "layers": 1, "heads": 2, "mlp": MLP,
                      "image_size": IMG, "patch_size": P},
           "text": {"width": W, "layers": 1, "heads": 1, "mlp": MLP, "vocab_size": vocab,
                    "context_length": CTX, "bos_id": vocab - 2, "eos_id": vocab - 1},
           "embed_dim": E, "ln_eps": 1e-5, "curvature": 1.0, "visual_alpha": 0.5,
           "textual_alpha": 0.25, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25],
           "bounds": {"V": {"avg": 1.0, "low_05": 0.5, "up_95": 1.5}, "S": None},
           "name": "fuzz-seed"}
    shapes = {}
    g = IMG // P

    def layers(tower, mlp):
        p = tower + ".encoder.layers.0."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[p + "self_attn." + proj + ".weight"] = [W, W]
            shapes[p + "self_attn." + proj + ".bias"] = [W]
        for norm in ("layer_norm1", "layer_norm2"):
            shapes[p + norm + ".weight"] = [W]
            shapes[p + norm + ".bias"] = [W]
        shapes[p + "mlp.fc1.weight"] = [mlp, W]
        shapes[p + "mlp.fc1.bias"] = [mlp]
        shapes[p + "mlp.fc2.weight"] = [W, mlp]
        shapes[p + "mlp.fc2.bias"] = [W]

    shapes["vision_model.embeddings.class_embedding"] = [W]
    shapes["vision_model.embeddings.patch_embedding.weight"] = [W, 3, P, P]
    shapes["vision_model.embeddings.patch_embedding.bias"] = [W]
    shapes["vision_model.embeddings.position_embedding.weight"] = [g * g + 1, W]
    for n in ("pre_layrnorm", "post_layernorm"):
        shapes["vision_model." + n + ".weight"] = [W]
        shapes["vision_model." + n + ".bias"] = [W]
    layers("vision_model", MLP)
    shapes["visual_projection.weight"] = [E, W]
    shapes["text_model.embeddings.token_embedding.weight"] = [vocab, W]
    shapes["text_model.embeddings.position_embedding.weight"] = [CTX, W]
    layers("text_model", MLP)
    shapes["text_model.final_layer_norm.weight"] = [W]
    shapes["text_model.final_layer_norm.bias"] = [W]
    shapes["text_projection.weight"] = [E, W]

    items = []
    for i, (name, shape) in enumerate(sorted(shapes.items())):
        x = np.linspace(-1, 1, int(np.prod(shape)), dtype=np.float32)
        kind = ("F32", "F16", "BF16")[i % 3] if "token_embedding" not in name else "F16"
        if kind == "F32":
            data = x.astype("<f4").tobytes()
        elif kind == "F16":
            data = x.astype("<f2").tobytes()
        else:
            data = (x.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
        items.append((name, data, kind, shape))
    text = "\n".join(MERGES).encode()
    items.append(("tokenizer.merges", text, "U8", [len(text)]))
    meta = {"format": "hydb-model", "hydb": json.dumps(cfg, sort_keys=True)}
    return safetensors(items, meta)


def model_seeds():
    put("model", "tiny", tiny_model())
    put("safetensors", "tiny-model", tiny_model())
    small = [("a", struct.pack("<4f", 1, 2, 3, 4), "F32", [2, 2]),
             ("empty", b"", "I64", [0, 3]),
             ("b", b"\x01\x02", "U8", [2]),
             ("c", b"\x00\x3c", "F16", []),
             ("d", struct.pack("<q", -5), "I64", [1, 1, 1])]
    put("safetensors", "small", safetensors(small, {"k": "v"}))
    put("safetensors", "empty", safetensors([], None))


def tokenizer_seeds():
    caps = {
        "ascii": "A photo of the cat and the dog, isn't it? 123 123!",
        "entities": "caf&eacute; &amp;amp; &lt;b&gt; &#233; &#x1F600; &AMP &notit; &check;",
        "unicode": "Caf\u00e9 \u0130stanbul \u03a3\u039f\u03a3 \uff26\uff55\uff4c\uff4c \ufb01ne "
                   "\u201cquoted\u201d \U0001F600\U0001F44D\U0001F3FD \u0627\u0644 \u4e2d\u6587",
        "controls": "line\r\nbreak\u2028sep \x1b[31mred\x1b[0m \u0081 \u200bzw\u00ad tab\there",
        "specials": "<|startoftext|>x<|endoftext|> 's 't 're 've 'm 'll 'd",
        "long": " ".join(["word%d" % i for i in range(120)]),
    }
    for name, text in caps.items():
        put("tokenize", name, text.encode())
    merges = "#version: 0.2\n" + "\n".join(MERGES + ["Ã ©", "ðŁ ĺ", "ðŁĺ Ģ</w>"]) + "\n"
    put("tokenizer_new", "merges", b"\x00" + merges.encode())
    put("tokenizer_new", "limit-crlf", b"\x02" + merges.replace("\n", "\r\n").encode())


def image_seeds():
    data = os.path.join(SRC, "tests", "data")
    for name in ("one_pixel.png", "grey1.png", "grey2_trns.png", "palette8_interlaced.png",
                 "grey.jpg", "progressive.jpg", "lossy.webp"):
        with open(os.path.join(data, name), "rb") as f:
            put("image", name, f.read())


def lib(name):
    return ctypes.CDLL(name)


def record(key, caption=b"", meta=b"", zcaption=None, dim=4, rid=7):
    """One record as storage/record.c lays it out (see record.h)."""
    flags = (1 if caption or zcaption else 0) | (2 if meta else 0)
    cap_z = zcaption if zcaption is not None else caption
    cap_len = len(caption)
    hdr = struct.pack("<IHBBIfQQIIIIIIIIQQ", 0x43455248, 1, 1, 2, 3, 1.5, rid, 11, dim,
                      len(key), cap_len, len(cap_z), len(meta), len(meta), flags, 0, 0, 0)
    buf = bytearray(hdr + key + cap_z + meta)
    xxh = lib("libxxhash.so.0")
    xxh.XXH64.restype = ctypes.c_uint64
    xxh.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
    struct.pack_into("<Q", buf, 72, xxh.XXH64(bytes(buf), len(buf), 0))
    return bytes(buf)


def zstd(data):
    z = lib("libzstd.so.1")
    z.ZSTD_compress.restype = ctypes.c_size_t
    z.ZSTD_compress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                ctypes.c_size_t, ctypes.c_int]
    out = ctypes.create_string_buffer(len(data) + 128)
    n = z.ZSTD_compress(out, len(out), data, len(data), 3)
    return out.raw[:n]


def record_seeds():
    long_caption = b"a photo of a cat sitting on a mat " * 8
    # Byte 0 even: the target fixes the checksum; odd: taken as is.
    put("record", "plain", b"\x00" + record(b"key-1", b"a cat", b'{"m":1}'))
    put("record", "zstd", b"\x00" + record(b"k", long_caption, zcaption=zstd(long_caption)))
    put("record", "verified", b"\x01" + record(b"key-2", b"", b'{"a":[1,2]}'))
    put("record", "key-only", b"\x01" + record(b"x"))


def lmdb_seeds(hydb):
    """Small real data files: a new database, one with records, and one
    after deletes and re-inserts (so that LMDB's free list has entries)."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as t:
        def run(*args, stdin=None):
            subprocess.run([hydb] + list(args), input=stdin, check=True,
                           stdout=subprocess.DEVNULL)
        def rows(first, n):
            return "".join(json.dumps({"key": "k%d" % i, "vector": [0.1 * (i % 7), -0.05 * (i % 5)],
                                       "caption": "c%d" % i}) + "\n"
                           for i in range(first, first + n)).encode()
        db = os.path.join(t, "db")
        run("init", db, "--dim", "2")
        shutil.copy(os.path.join(db, "data.mdb"), os.path.join(t, "empty"))
        with open(os.path.join(t, "a.jsonl"), "wb") as f:
            f.write(rows(0, 40))
        run("import", db, os.path.join(t, "a.jsonl"), "--quiet")
        shutil.copy(os.path.join(db, "data.mdb"), os.path.join(t, "records"))
        for i in range(0, 40, 3):
            run("delete", db, "k%d" % i)
        with open(os.path.join(t, "b.jsonl"), "wb") as f:
            f.write(rows(30, 20))
        run("import", db, os.path.join(t, "b.jsonl"), "--quiet")
        shutil.copy(os.path.join(db, "data.mdb"), os.path.join(t, "churn"))
        for name in ("empty", "records", "churn"):
            with open(os.path.join(t, name), "rb") as f:
                put("lmdb", name, f.read())


def main():
    hydb = os.environ.get("HYDB")
    for d in os.listdir(CORPUS) if os.path.isdir(CORPUS) else []:
        if d == "lmdb" and not hydb:
            continue  # its seeds need the hydb program
        for f in os.listdir(os.path.join(CORPUS, d)):
            if f.startswith("seed-"):
                os.remove(os.path.join(CORPUS, d, f))
    import_seeds()
    json_seeds()
    model_seeds()
    tokenizer_seeds()
    image_seeds()
    record_seeds()
    if hydb:
        lmdb_seeds(hydb)
    else:
        print("HYDB (the built hydb program) not set: lmdb seeds left as they are")


if __name__ == "__main__":
    main()

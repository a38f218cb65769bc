"""End-to-end: the quick start's pipeline, asserted.

Ingest sample photos with their captions using a tiny random model, kill the
ingest midway and resume, then query with every flag, and check counts,
--safe-only, the redirect arithmetic in both modes, calibration, the contact
sheet, and that re-ingesting is a no-op.
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SRC = os.environ["HYDB_SRCDIR"]
HYDB = os.path.join(os.environ["HYDB_BUILDDIR"], "hydb")
PHOTOS = "/usr/lib/python3/dist-packages/skimage/data"


def run(*args, check=True, env=None):
    p = subprocess.run([HYDB, *args], capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        sys.exit(f"FAIL: hydb {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p


def jsonl(p):
    return [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]


def fail(msg):
    sys.exit("FAIL: " + msg)


def main():
    if not os.path.isdir(PHOTOS):
        print("skip: python3-skimage photos missing")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="hydb-e2e-")
    here = os.getcwd()
    try:
        # From the folder that holds images/, as in the quick start: keys
        # are then "images/NAME", which examples/demo-labels.csv names.
        os.chdir(tmp)
        e2e(tmp)
    finally:
        os.chdir(here)
        shutil.rmtree(tmp, ignore_errors=True)


def e2e(tmp):
    img = os.path.join(tmp, "images")
    os.makedirs(img)
    pairs = []
    with open(os.path.join(SRC, "examples/demo-captions.txt")) as f:
        for line in f:
            name, cap = line.rstrip("\n").split("|", 1)
            shutil.copy(os.path.join(PHOTOS, name), img)
            with open(os.path.join(img, os.path.splitext(name)[0] + ".txt"), "w") as c:
                c.write(cap + "\n")
            pairs.append(("images/" + name, cap))
    n = len(pairs)
    # a bad file among good ones is reported and skipped
    with open(os.path.join(img, "broken.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 not really a jpeg")

    model = os.path.join(tmp, "model.safetensors")
    subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tools/hydb-convert"), "--tiny", model,
                    "--seed", "3"], check=True, capture_output=True)
    info = json.loads(run("model", "info", model, "--json").stdout)
    c = info["curvature"]
    db = os.path.join(tmp, "db")

    # --- ingest, killed midway, then resumed -----------------------------
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    p = subprocess.Popen([HYDB, "ingest", db, "images", "--model", model, "--batch", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    killed_at = None
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None:
        s = run("stats", db, "--json", check=False)
        if s.returncode == 0:
            cnt = json.loads(s.stdout)["count"]
            if cnt >= 2:
                p.send_signal(signal.SIGKILL)
                killed_at = cnt
                break
        time.sleep(0.05)
    p.wait()
    if killed_at is None:
        print("note: ingest finished before it could be killed")
    else:
        cnt = json.loads(run("stats", db, "--json").stdout)["count"]
        # whole batches only: an image and its caption commit together
        if cnt % 2:
            fail(f"half-written item after kill: {cnt} entries")
        print(f"killed ingest with {cnt} entries committed")
    r = run("ingest", db, "images", "--model", model, check=False)
    if r.returncode != 2 or "broken.jpg" not in r.stderr:
        fail(f"the broken file must be reported and make the exit status 2: {r.returncode} {r.stderr}")
    st = json.loads(run("stats", db, "--json").stdout)
    if st["count"] != 2 * n:
        fail(f"expected {2 * n} entries (images + captions), got {st['count']}")
    r = run("ingest", db, "images", "--model", model, check=False)
    if f"ingested 0 images (0 captions), skipped {n} unchanged, failed 1" not in r.stdout:
        fail("re-ingest must be a no-op: " + r.stdout)
    if json.loads(run("stats", db, "--json").stdout)["count"] != 2 * n:
        fail("re-ingest changed the count")
    if "0 store problems, 0 index problems" not in run("check", db).stdout:
        fail("hydb check found problems")

    # --- every record has the right links ---------------------------------
    for name, cap in pairs:
        im = json.loads(run("get", db, name, "--json").stdout)
        tx = json.loads(run("get", db, name + "#caption1", "--json").stdout)
        if im["modality"] != "image" or tx["modality"] != "text" or tx["caption"] != cap:
            fail(f"{name}: wrong modality or caption")
        if im["item"] != tx["item"]:
            fail(f"{name}: caption not linked to its image")

    # --- query by every source --------------------------------------------
    res = jsonl(run("query", db, "--text", pairs[1][1], "-k", "3", "--json"))
    if len(res) != 3 or res[0]["key"] != pairs[1][0] + "#caption1" or res[0]["distance"] > 1e-5:
        fail(f"a caption must find itself first: {res[:1]}")
    res = jsonl(run("query", db, "--image", pairs[2][0], "-k", "2", "--json",
                    "--modality", "image"))
    if res[0]["key"] != pairs[2][0] or any(r["modality"] != "image" for r in res):
        fail("an image must find itself first, and --modality must hold")
    exact = jsonl(run("query", db, "--like", pairs[0][0], "-k", "5", "--json", "--exact"))
    approx = jsonl(run("query", db, "--like", pairs[0][0], "-k", "5", "--json", "--ef", "100"))
    if [r["key"] for r in exact] != [r["key"] for r in approx]:
        fail("index and exact search disagree on a 20-point database")
    if exact[0]["plan"] != "exact":
        fail("--exact must use brute force")
    vec = json.loads(run("get", db, pairs[3][0], "--json", "--vector").stdout)["vector"]
    res = jsonl(run("query", db, "--vector", json.dumps(vec), "-k", "1", "--json"))
    if res[0]["key"] != pairs[3][0]:
        fail("--vector must find the stored point")

    # --- calibrate with known labels, then --safe-only --------------------
    labels = os.path.join(SRC, "examples/demo-labels.csv")
    cal = jsonl(run("calibrate", db, "--labels", labels, "--json"))
    thr = {r["modality"]: r["threshold"] for r in cal}
    every = jsonl(run("query", db, "--text", "a photo", "-k", str(2 * n), "--json", "--exact"))
    for r in every:
        want = "safe" if r["radius"] <= thr[r["modality"]] else "unsafe"
        if r["label"] != want:
            fail(f"{r['key']}: label {r['label']} but radius {r['radius']} vs threshold {thr[r['modality']]}")
    safe = [r["key"] for r in every if r["label"] == "safe"]
    got = jsonl(run("query", db, "--text", "a photo", "-k", str(2 * n), "--json", "--safe-only"))
    if any(r["label"] != "safe" for r in got):
        fail("--safe-only returned an unsafe entry")
    if sorted(r["key"] for r in got) != sorted(safe):
        fail("--safe-only lost safe entries (recall < 1 at k = all)")
    print(f"--safe-only: {len(got)} of {len(every)} entries, all safe")

    # --- redirect arithmetic ------------------------------------------------
    ub = 0.05
    ubp = ub + math.tanh((ub - 0.8) / c) + 1
    q = json.loads(run("encode", "--model", model, "--text", pairs[3][1], "--json").stdout)
    r0 = q["radius"]
    if not r0 > ubp:
        fail(f"test setup: query radius {r0} must exceed the bound {ubp}")
    for mode, expect in (("hysac", math.asinh(math.sqrt(c) * ubp) / math.sqrt(c)), ("geodesic", ubp)):
        res = jsonl(run("query", db, "--text", pairs[3][1], "-k", "3", "--json",
                        f"--redirect={mode}", "--bound", str(ub)))
        if abs(res[0]["redirected_from"] - r0) > 1e-5 * (1 + r0):
            fail(f"{mode}: redirected_from {res[0]['redirected_from']} != query radius {r0}")
        if abs(res[0]["redirected_to"] - expect) > 1e-5 * (1 + expect):
            fail(f"{mode}: redirected_to {res[0]['redirected_to']} != {expect}")
        print(f"redirect {mode}: {r0:.6f} -> {res[0]['redirected_to']:.6f} (expected {expect:.6f})")
    # within the bound: no move
    res = jsonl(run("query", db, "--text", pairs[3][1], "-k", "1", "--json", "--redirect", "--bound", "10"))
    if "redirected_from" in res[0]:
        fail("a query inside the bound must not be redirected")
    out = run("query", db, "--text", pairs[3][1], "-k", "1", "--redirect", "--bound", str(ub)).stdout
    if not out.startswith("redirected (hysac): query radius"):
        fail("the table output must say the query was redirected")

    # --- contact sheet -------------------------------------------------------
    sheet = os.path.join(tmp, "sheet.png")
    res = jsonl(run("query", db, "--image", pairs[0][0], "-k", "7",
                    "--modality", "image", "--json", "--sheet", sheet))
    from PIL import Image
    im = Image.open(sheet)
    im.load()
    # one tile per result across (up to 8), framed, with three lines of text
    cols = min(len(res), 8)
    rows = (len(res) + cols - 1) // cols
    if im.size != (cols * 240 + 8, rows * 288 + 8) or im.mode != "RGB":
        fail(f"contact sheet has size {im.size} mode {im.mode}")
    # the first tile is the query photo itself, not the dark background
    px = im.crop((12, 12, 236, 236)).convert("L")
    if sum(px.getdata()) / (224 * 224) < 45:
        fail("first tile of the contact sheet is empty")
    print(f"contact sheet {im.size[0]}x{im.size[1]} with {len(res)} tiles")

    # --- classify, traverse, histogram ----------------------------------------
    p = run("classify", db, "--text", pairs[0][1], "--exit-status", "--json", check=False)
    cl = json.loads(p.stdout)
    if (cl["label"] == "safe") != (p.returncode == 0) or cl["threshold"] != thr["text"]:
        fail(f"classify: {cl} exit {p.returncode}")
    tr = jsonl(run("traverse", db, "--text", pairs[4][1], "--steps", "20", "--json"))
    if not tr or tr[0]["step"] != 0 or any(b["radius"] > a["radius"] + 1e-9 for a, b in zip(tr, tr[1:])):
        fail("traverse must start at step 0 and move toward the origin")
    plot = os.path.join(tmp, "hist.png")
    run("stats", db, "--plot", plot)
    Image.open(plot).load()

    # --- a model that did not make the database is refused -----------------
    other = os.path.join(tmp, "other.safetensors")
    subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tools/hydb-convert"), "--tiny", other,
                    "--seed", "4"], check=True, capture_output=True)
    p = run("ingest", db, "images", "--model", other, check=False)
    if p.returncode != 2 or "refusing to mix models" not in p.stderr:
        fail("ingest with another model must be refused: " + p.stderr)
    print("end-to-end: ok")


if __name__ == "__main__":
    main()

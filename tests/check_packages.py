"""Every file from outside the repository that hydb's build, quick start,
tests and benches read must come from a package that installing
tools/debian-packages.txt brings in: the list itself, or what its packages
depend on, or Debian's essential set. A package installed on this machine
by hand must not hide a missing install step (python3-skimage-lib was
listed while the sample photos belong to python3-skimage).

The files: absolute paths written in the repository's scripts and sources
(and the photos the quick start copies), every header the build read
(the compiler's .deps files) or that a source includes, the shared
libraries hydb links or loads, the Python modules that the project's
Python code imports, and the commands its scripts run. Each goes through
dpkg -S. Exit 0 all covered, 1 otherwise (every uncovered file listed)."""
import glob, importlib.util, os, re, shutil, subprocess, sys

top, build = sys.argv[1], sys.argv[2]
os.chdir(top)
tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True).stdout.split()
if not tracked:  # a release tarball: no git
    tracked = [os.path.relpath(p, top) for p in glob.glob("**/*", recursive=True)]
text_files = [p for p in tracked if os.path.isfile(p) and not p.startswith(("tests/data/", "tests/fuzz/corpus/"))
              and os.path.getsize(p) < 2_000_000]


def read(p):
    try:
        with open(p, encoding="utf-8") as f:
            return f.read()
    except (UnicodeDecodeError, OSError):
        return ""


files = {}  # outside path -> why it is read


def want(path, why):
    if path and os.path.exists(path):
        files.setdefault(os.path.normpath(path), why)


# 1. absolute paths written in scripts and sources (not this file's own
# search roots below, which are places to look, not files read)
for p in text_files:
    if p == "tests/check_packages.py":
        continue
    for m in re.finditer(r"(?<![\w.$/])(/(?:usr|etc|opt|lib|bin)/[A-Za-z0-9_.+/-]*[A-Za-z0-9_+])", read(p)):
        want(m.group(1), p)
photos = "/usr/lib/python3/dist-packages/skimage/data"
for line in read("examples/demo-captions.txt").splitlines():
    if "|" in line:
        want(os.path.join(photos, line.split("|")[0]), "tools/quickstart (examples/demo-captions.txt)")
        if not os.path.exists(os.path.join(photos, line.split("|")[0])):
            files[os.path.join(photos, line.split("|")[0])] = "MISSING: tools/quickstart copies it"

# 2. headers: what the compiler read, and every <...> a source includes
for po in glob.glob(os.path.join(build, "**/.deps/*.Po"), recursive=True):
    for m in re.finditer(r"(/usr/[^\s:\\]+)", read(po)):
        want(m.group(1), "compiled (" + os.path.basename(po) + ")")
roots = ["/usr/include", "/usr/include/x86_64-linux-gnu", "/usr/include/c++/12",
         "/usr/include/x86_64-linux-gnu/c++/12", "/usr/lib/gcc/x86_64-linux-gnu/12/include"]
roots += glob.glob("/usr/include/postgresql/*/server") + glob.glob("/usr/lib/llvm-14/lib/clang/*/include")
roots += glob.glob("/usr/include/python3*")  # python/hydb/_core.c: Python.h, numpy/arrayobject.h
# and every -I directory configure found through pkg-config (freetype2, ...)
for m in re.finditer(r"^\w+_CFLAGS = (.*)$", read(os.path.join(build, "Makefile")), re.M):
    roots += [f[2:] for f in m.group(1).split() if f.startswith("-I/usr/")]
own = {os.path.basename(p) for p in tracked}
for p in text_files:
    if not p.endswith((".c", ".h", ".cpp", ".cc")):
        continue
    for m in re.finditer(r"^\s*#\s*include\s*<([^>]+)>", read(p), re.M):
        name = m.group(1)
        if os.path.basename(name) in own:
            continue
        hit = [os.path.join(r, name) for r in roots if os.path.exists(os.path.join(r, name))]
        if hit:
            want(hit[0], p)
        else:
            files["<%s>" % name] = "MISSING: included by " + p

# 3. shared libraries linked or loaded at run time
for binary in [os.path.join(build, "hydb")] + glob.glob(os.path.join(build, ".libs/libhydb.so*")):
    if os.path.isfile(binary):
        out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        for m in re.finditer(r"=> (/\S+)", out):
            want(m.group(1), "linked by " + os.path.basename(binary))
ldconfig = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
for soname in ["libopenblas.so.0"]:  # src/base/blas.c dlopen()s it
    m = re.search(r"\s%s \(.*x86-64.*\) => (\S+)" % re.escape(soname), ldconfig)
    if m:
        want(os.path.realpath(m.group(1)), "dlopen()ed by src/base/blas.c")
    else:
        files[soname] = "MISSING: dlopen()ed by src/base/blas.c"

# 4. Python modules the project's Python code imports (files, heredocs, -c)
modules = {}
for p in text_files:
    s = read(p)
    if not (p.endswith((".py", ".sh")) or s.startswith("#!/usr/bin/python3") or "python3" in s[:200]):
        continue
    for m in re.finditer(r"^\s*(?:import ([\w., ]+)|from ([\w.]+) import)", s, re.M):
        for name in (m.group(1) or m.group(2)).split(","):
            name = name.strip().split(" ")[0].split(".")[0]
            if name:
                modules.setdefault(name, p)
    for m in re.finditer(r"python3?\"? -c ['\"]import ([\w, ]+)", s):
        for name in m.group(1).split(","):
            modules.setdefault(name.strip().split(".")[0], p)
probe = "import importlib.util,sys\nfor n in sys.argv[1:]:\n    try:\n        s=importlib.util.find_spec(n)\n    except Exception:\n        s=None\n    print(n, (s.origin or '') if s else '-')"
out = subprocess.run(["/usr/bin/python3", "-c", probe] + sorted(modules), capture_output=True, text=True).stdout
for line in out.splitlines():
    name, origin = line.split(" ", 1)
    if origin == "-":
        if name + ".py" not in own and not os.path.isdir(os.path.join(top, name)) \
                and not os.path.isdir(os.path.join(top, "python", name)):  # the package itself
            files["python:" + name] = "MISSING: imported by " + modules[name]
    elif origin.startswith("/usr/") and origin not in ("built-in", "frozen"):
        want(origin, "python import %s in %s" % (name, modules[name]))

# 5. commands the scripts run
for cmd in ["python3", "gnuplot", "clang", "g++", "cc", "make", "autoreconf", "libtoolize", "pkg-config",
            "timeout", "runuser", "dpkg", "git"]:
    path = shutil.which(cmd, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if path:
        want(os.path.realpath(path), "command " + cmd)

# ---- the packages that installing the list brings in
listed = set()
for line in read("tools/debian-packages.txt").splitlines():
    listed.update(line.split("#")[0].split())
q = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Essential}\t${Status}\t${Provides}\t${Pre-Depends}, ${Depends}\n"],
                   capture_output=True, text=True).stdout
deps, provides, installed = {}, {}, set()
closure = set(listed)
for line in q.splitlines():
    pkg, ess, status, prov, dep = (line.split("\t") + [""] * 5)[:5]
    if "installed" not in status or "not-installed" in status:
        continue
    installed.add(pkg)
    if ess == "yes":
        closure.add(pkg)
    for v in prov.split(","):
        if v.strip():
            provides.setdefault(v.split()[0], set()).add(pkg)
    deps[pkg] = [[a.split()[0].split(":")[0] for a in alt.split("|") if a.strip()]
                 for alt in dep.split(",") if alt.strip()]
todo = list(closure)
while todo:
    p = todo.pop()
    for alts in deps.get(p, []):
        cands = []
        for a in alts:
            cands += [a] if a in installed else sorted(provides.get(a, ()))
        for c in cands[:1]:
            if c not in closure:
                closure.add(c)
                todo.append(c)

bad = []
for path, why in sorted(files.items()):
    if why.startswith("MISSING"):
        bad.append("%s: %s" % (path, why))
        continue
    owners = set()
    cands = {path, os.path.realpath(path)}
    for c in list(cands):  # merged /usr: a package may ship /bin/x for /usr/bin/x
        if re.match(r"/usr/(bin|sbin|lib)/", c):
            cands.add(c[4:])
        elif re.match(r"/(bin|sbin|lib)/", c):
            cands.add("/usr" + c)
    for cand in cands:
        r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            if ": " in line and not line.startswith("diversion"):
                owners.update(o.strip().split(":")[0] for o in line.split(": ")[0].split(","))
    if not owners:
        bad.append("%s: no Debian package ships it (read by %s)" % (path, why))
    elif not owners & closure:
        bad.append("%s: belongs to %s, which tools/debian-packages.txt does not bring in (read by %s)"
                   % (path, ", ".join(sorted(owners)), why))
print("checked %d outside files against %d listed packages (%d with dependencies)"
      % (len(files), len(listed), len(closure)))
for b in bad:
    print("FAIL", b)
sys.exit(1 if bad else 0)

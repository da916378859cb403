#!/usr/bin/env python3
"""Carries the shared test files to the GPU machine in parts that fit a device call's carry limit.

  shared-pack.py pack SHARED OUTDIR [--part-mb 33] [--exclude GLOB]... [GLOB...]   # OUTDIR/part-1, part-2...
  shared-pack.py unpack PARTS DEST                              # there: PARTS is one part or their folder

The GPU tests read ~130 MB of models, references and text (~112 MB compressed); one call carries 64 MiB
including the tracked tree (~26 MB) and the test binaries (~5 MB compressed), hence parts of 33 MB. Each file
is xz-compressed; 16-bit weights (bf16/f16 GGUF, safetensors) as their even and odd bytes apart, because the
high bytes (sign, exponent, top of the mantissa) compress well alone and the low bytes hardly at all:
tiny-llama-target-bf16.gguf is 28.6 MB that way against 29.9 MB as one stream. Every part holds the whole
manifest (path, size and SHA-256 of every file, and its part), so unpack restores what the parts at hand
hold, checks each file against the manifest, and leaves a file already in DEST with the right hash alone: the
parts can travel one call at a time to a warm machine and add up there.
"""
import argparse
import concurrent.futures
import glob
import hashlib
import json
import lzma
import os
import sys

DEFAULT_GLOBS = ["models/gguf/*.gguf", "models/tiny-qwen2-bpe/*", "refs/*.json", "data/valid.txt"]
MANIFEST = "manifest.json"


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def is_16bit(path):
    name = os.path.basename(path).lower()
    return name.endswith(".safetensors") or (name.endswith(".gguf") and ("bf16" in name or "f16" in name))


def compress(args):
    """Returns (relative path, size, sha256, {blob suffix: compressed bytes})."""
    root, rel = args
    data = read_bytes(os.path.join(root, rel))
    streams = {"xz": data}
    if is_16bit(rel) and len(data) % 2 == 0:
        streams = {"even.xz": data[0::2], "odd.xz": data[1::2]}
    return rel, len(data), sha256(data), {k: lzma.compress(v, preset=6) for k, v in streams.items()}


def pack(shared, outdir, part_mb, globs, excludes):
    rels = sorted({os.path.relpath(p, shared) for g in globs for p in glob.glob(os.path.join(shared, g))
                   if os.path.isfile(p)} - {os.path.relpath(p, shared) for g in excludes
                                             for p in glob.glob(os.path.join(shared, g))})
    if not rels:
        sys.exit(f"shared-pack: no files under {shared} match {' '.join(globs)}")
    if glob.glob(os.path.join(outdir, "part-*")):
        sys.exit(f"shared-pack: {outdir} already holds parts; remove them first")
    with concurrent.futures.ProcessPoolExecutor() as pool:
        packed = list(pool.map(compress, [(shared, r) for r in rels]))
    budget = int(part_mb * 1e6)
    parts = []  # [bytes used, [entries]]; first fit, largest first
    files = {}
    for i, (rel, size, digest, blobs) in enumerate(sorted(packed, key=lambda p: -sum(map(len, p[3].values())))):
        need = sum(len(b) for b in blobs.values())
        if need > budget:
            sys.exit(f"shared-pack: {rel} compresses to {need / 1e6:.1f} MB, more than a part ({part_mb} MB)")
        part = next((p for p in parts if p[0] + need <= budget), None)
        if part is None:
            part = [0, []]
            parts.append(part)
        part[0] += need
        part[1].append((f"f{i}", blobs))
        files[rel] = {"size": size, "sha256": digest, "part": parts.index(part) + 1, "blob": f"f{i}",
                      "streams": sorted(blobs)}
    manifest = json.dumps({"files": files}, indent=1, sort_keys=True)
    for n, (used, entries) in enumerate(parts, 1):
        d = os.path.join(outdir, f"part-{n}")
        os.makedirs(d, exist_ok=True)
        for blob, streams in entries:
            for suffix, data in streams.items():
                with open(os.path.join(d, f"{blob}.{suffix}"), "wb") as f:
                    f.write(data)
        with open(os.path.join(d, MANIFEST), "w") as f:
            f.write(manifest)
        print(f"{d}: {len(entries)} files, {used / 1e6:.1f} MB")


def restore(part_dir, entry):
    streams = [lzma.decompress(read_bytes(os.path.join(part_dir, f"{entry['blob']}.{s}")))
               for s in entry["streams"]]
    if len(streams) == 1:
        return streams[0]
    even, odd = streams  # sorted names: even.xz, odd.xz
    data = bytearray(len(even) + len(odd))
    data[0::2], data[1::2] = even, odd
    return bytes(data)


def unpack(parts, dest):
    part_dirs = [parts] if os.path.isfile(os.path.join(parts, MANIFEST)) else \
        sorted(glob.glob(os.path.join(parts, "part-*")))
    part_dirs = [d for d in part_dirs if os.path.isfile(os.path.join(d, MANIFEST))]
    if not part_dirs:
        sys.exit(f"shared-pack: no part with a {MANIFEST} in {parts}")
    with open(os.path.join(part_dirs[0], MANIFEST)) as f:
        files = json.load(f)["files"]
    restored = skipped = absent = 0
    for rel, entry in sorted(files.items()):
        if os.path.isabs(rel) or ".." in rel.split("/"):
            sys.exit(f"shared-pack: the manifest names {rel}, outside the destination")
        target = os.path.join(dest, rel)
        if os.path.isfile(target) and os.path.getsize(target) == entry["size"] and \
                sha256(read_bytes(target)) == entry["sha256"]:
            skipped += 1
            continue
        holder = next((d for d in part_dirs
                       if all(os.path.isfile(os.path.join(d, f"{entry['blob']}.{s}")) for s in entry["streams"])),
                      None)
        if holder is None:
            absent += 1
            print(f"not here: {rel} (part {entry['part']})")
            continue
        try:
            data = restore(holder, entry)
        except (lzma.LZMAError, OSError) as e:
            sys.exit(f"shared-pack: {rel}: cannot decompress: {e}")
        if len(data) != entry["size"] or sha256(data) != entry["sha256"]:
            sys.exit(f"shared-pack: {rel}: restored bytes do not match the manifest")
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        with open(target + ".part", "wb") as f:
            f.write(data)
        os.replace(target + ".part", target)
        restored += 1
    print(f"{dest}: {restored} restored, {skipped} already there, {absent} in parts not carried")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("shared")
    p.add_argument("outdir")
    p.add_argument("--part-mb", type=float, default=33.0)
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave these out (e.g. the Q8_0 target, which the project tree carries)")
    p.add_argument("globs", nargs="*", default=DEFAULT_GLOBS)
    u = sub.add_parser("unpack")
    u.add_argument("parts")
    u.add_argument("dest")
    a = ap.parse_args()
    if a.cmd == "pack":
        pack(a.shared, a.outdir, a.part_mb, a.globs, a.exclude)
    else:
        unpack(a.parts, a.dest)


if __name__ == "__main__":
    main()

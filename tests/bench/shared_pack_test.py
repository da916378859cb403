#!/usr/bin/env python3
"""bench/gpu/shared-pack.py: files come back bit for bit, part by part, and damaged parts are refused."""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "gpu", "shared-pack.py")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


class SharedPack(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.shared = os.path.join(self.tmp, "shared")
        rng = random.Random(7)
        # bf16-like: a compressible high byte beside a random low byte (split into even/odd streams); an
        # odd-length f16 file (kept whole); a random file; small json; a file the globs leave out.
        bf16 = bytearray(300_000)
        bf16[0::2] = bytes(rng.getrandbits(8) for _ in range(150_000))
        bf16[1::2] = bytes(0x3C + (i % 3) for i in range(150_000))
        self.files = {
            "models/gguf/m-bf16.gguf": bytes(bf16),
            "models/gguf/m-f16.gguf": bytes(rng.getrandbits(8) for _ in range(100_001)),
            "models/gguf/m-Q4_0.gguf": bytes(rng.getrandbits(8) for _ in range(200_000)),
            "refs/references.json": b'{"target": {"prompts": []}}\n',
            "data/valid.txt": b"Some validation text.\n" * 500,
        }
        for rel, data in self.files.items():
            self.write(os.path.join(self.shared, rel), data)
        self.write(os.path.join(self.shared, "data/train.txt"), b"left out")
        self.out = os.path.join(self.tmp, "parts")
        r = run("pack", self.shared, self.out, "--part-mb", "0.25")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.parts = sorted(os.listdir(self.out))

    def tearDown(self):
        shutil.rmtree(self.tmp)

    @staticmethod
    def write(path, data):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def read_back(self, dest):
        found = {}
        for root, _, names in os.walk(dest):
            for n in names:
                found[os.path.relpath(os.path.join(root, n), dest)] = read_bytes(os.path.join(root, n))
        return found

    def test_every_file_comes_back_bit_for_bit(self):
        self.assertGreaterEqual(len(self.parts), 2)
        self.assertTrue(any(n.endswith(".even.xz") for p in self.parts for n in os.listdir(os.path.join(self.out, p))))
        dest = os.path.join(self.tmp, "dest")
        r = run("unpack", self.out, dest)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read_back(dest), self.files)

    def test_parts_carried_one_at_a_time_add_up(self):
        dest = os.path.join(self.tmp, "dest")
        first = run("unpack", os.path.join(self.out, self.parts[0]), dest)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn("not here:", first.stdout)
        got = self.read_back(dest)
        self.assertTrue(0 < len(got) < len(self.files))
        for rel, data in got.items():
            self.assertEqual(data, self.files[rel])
        for p in self.parts[1:]:
            r = run("unpack", os.path.join(self.out, p), dest)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"{len(got)} already there", r.stdout)
            got = self.read_back(dest)
        self.assertEqual(got, self.files)

    def test_a_stale_file_is_replaced(self):
        dest = os.path.join(self.tmp, "dest")
        rel = "models/gguf/m-Q4_0.gguf"
        self.write(os.path.join(dest, rel), bytes(len(self.files[rel])))  # right size, wrong bytes
        r = run("unpack", self.out, dest)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read_back(dest)[rel], self.files[rel])

    def test_a_damaged_part_is_refused_and_leaves_nothing_half_written(self):
        part = os.path.join(self.out, self.parts[0])
        blob = next(os.path.join(part, n) for n in sorted(os.listdir(part)) if n.endswith(".xz"))
        data = bytearray(read_bytes(blob))
        data[len(data) // 2] ^= 0xFF
        self.write(blob, data)
        dest = os.path.join(self.tmp, "dest")
        r = run("unpack", part, dest)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("shared-pack:", r.stderr)
        for rel in self.read_back(dest) if os.path.isdir(dest) else {}:
            self.assertFalse(rel.endswith(".part"), rel)

    def test_a_file_larger_than_a_part_is_a_clear_error(self):
        r = run("pack", self.shared, os.path.join(self.tmp, "small"), "--part-mb", "0.05")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("more than a part", r.stderr)

    def test_excluded_files_stay_out(self):
        out = os.path.join(self.tmp, "fewer")
        r = run("pack", self.shared, out, "--part-mb", "0.25", "--exclude", "models/gguf/*bf16*", "--exclude",
                "refs/*")
        self.assertEqual(r.returncode, 0, r.stderr)
        dest = os.path.join(self.tmp, "dest")
        self.assertEqual(run("unpack", out, dest).returncode, 0)
        self.assertEqual(sorted(self.read_back(dest)), sorted(
            rel for rel in self.files if not rel.endswith("bf16.gguf") and not rel.startswith("refs/")))

    def test_packing_over_old_parts_is_refused(self):
        r = run("pack", self.shared, self.out)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("already holds parts", r.stderr)

    def test_no_manifest_is_a_clear_error(self):
        r = run("unpack", self.shared, os.path.join(self.tmp, "dest"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no part with a manifest.json", r.stderr)


if __name__ == "__main__":
    unittest.main()

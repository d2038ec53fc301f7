#!/usr/bin/env python3
"""Writes the reference vectors of tests/io/test_ggml_quants.cpp into tests/data/ggml_quants/.

Run it with the environment of setup.sh (PyPI gguf 0.19.0 on Debian's numpy):
    tools/quants_reference/setup.sh
    build-quants/venv/bin/python tools/quants_reference/make_fixtures.py | tee tools/quants_reference/fixtures.txt

Every file is one case: test vectors as text, lines starting with '#' a comment, the others the hex
digits of these little-endian bytes (32 to a line):
    char magic[4] = "GQF1"; u32 ggml type id; u64 n (elements); u64 n_input (0 or n); u64 n_bytes;
    f32 input[n_input]; u8 bytes[n_bytes]; f32 output[n]
quantize_<type>.hex: input = float32 values, bytes = gguf.quants.quantize(input), output =
gguf.quants.dequantize(bytes). dequantize_<type>.hex: no input, bytes = random valid blocks, output =
gguf.quants.dequantize(bytes). Q8_K, which gguf.quants cannot dequantize, takes its output from
ggml's dequantize_row_q8_K written in numpy (x = d * q in float32).

Deterministic: fixed seeds, numpy's PCG64 Generator. The float-to-integer casts of numpy that
gguf.quants relies on are platform-defined for inf and NaN (the blocks named "tiny" below, whose
scale's reciprocal overflows): those bytes are x86-64's.
"""

import hashlib
import os
import platform
import struct
import sys
import warnings

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

try:
    from importlib.metadata import version as _version
    GGUF_VERSION = _version("gguf")
except Exception:  # pragma: no cover
    GGUF_VERSION = "unknown"

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "ggml_quants")

f32 = np.float32


def bits_to_f32(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def half_values(h):
    return np.array(h, dtype=np.uint16).view(np.float16).astype(np.float32)


def random_halves(rng, n, lo=-16, hi=4):
    """Finite halves of random sign and log-uniform magnitude in [2^lo, 2^hi] (subnormals included)."""
    mag = np.exp2(rng.uniform(lo, hi, n))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return (sign * mag).astype(np.float16)


# ---- quantize inputs ----------------------------------------------------------------------------

def f16_inputs(rng):
    parts = []
    # normal values at scales from half-subnormal to beyond the half range
    parts.append(rng.standard_normal(384) * np.exp2(rng.uniform(-26, 17, 384)))
    # exact midpoints between consecutive finite halves (ties: round to even), both signs
    h = rng.integers(0, 0x7BFF, 256)
    mid = (half_values(h).astype(np.float64) + half_values(h + 1).astype(np.float64)) / 2
    mid = (mid * np.where(rng.random(256) < 0.5, -1, 1)).astype(f32)
    parts.append(mid)
    # one float ulp either side of a midpoint
    parts.append(np.nextafter(mid[:64], np.float32(np.inf)))
    parts.append(np.nextafter(mid[64:128], np.float32(0)))
    # subnormal halves: random values below 2^-14 and exact subnormal halves
    parts.append(rng.uniform(-2.0 ** -14, 2.0 ** -14, 96))
    parts.append(half_values(rng.integers(1, 0x400, 32)))
    # boundaries: underflow, the normal/subnormal edge, overflow to infinity
    edges = [2.0 ** -25, np.nextafter(f32(2.0 ** -25), f32(1)), np.nextafter(f32(2.0 ** -25), f32(0)),
             2.0 ** -24, 1.5 * 2.0 ** -24, 2.5 * 2.0 ** -24, 2.0 ** -14, np.nextafter(f32(2.0 ** -14), f32(0)),
             65504.0, 65519.0, np.nextafter(f32(65520.0), f32(0)), 65520.0, 65536.0, 1e5, 3e38,
             np.finfo(np.float32).max, np.inf, 2047.5, 2048.5, 4097.0, 4099.0, 1.0 + 2.0 ** -11,
             1.0 + 3 * 2.0 ** -11]
    edges = np.array(edges, dtype=f32)
    parts.append(edges)
    parts.append(-edges)
    parts.append(np.zeros(8))
    parts.append(np.full(8, -0.0))
    # NaNs: quiet and signalling, payloads that survive and that vanish (numpy keeps the class)
    parts.append(bits_to_f32([0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA00000, 0xFFFFFFFF, 0x7FBFE000,
                              0x7F802000, 0xFF801FFF]))
    return np.concatenate([np.asarray(p, dtype=f32) for p in parts])


def bf16_inputs(rng):
    parts = []
    parts.append(rng.standard_normal(384) * np.exp2(rng.uniform(-140, 127, 384)))
    parts.append(rng.standard_normal(128).astype(f32))
    # exact midpoints between consecutive bfloat16 (low 16 bits 0x8000), both signs, and one ulp off
    h = rng.integers(0, 0x7F7F, 256).astype(np.uint32)
    sign = np.where(rng.random(256) < 0.5, 0x80000000, 0).astype(np.uint32)
    mid = (h << 16) | 0x8000 | sign
    parts.append(mid.view(f32))
    parts.append((mid[:64] + 1).view(f32))
    parts.append((mid[64:128] - 1).view(f32))
    # float subnormals, overflow, infinities
    parts.append(bits_to_f32(rng.integers(1, 0x800000, 32)))
    edges = bits_to_f32([0x7F7F8000, 0x7F7F7FFF, 0x7F7FFFFF, 0x7F7E8000, 0x7F800000, 0x00008000, 0x00018000,
                         0x00007FFF, 0x3F808000, 0x3F818000, 0x3F80FFFF])
    parts.append(edges)
    parts.append(-edges)
    parts.append(np.zeros(8))
    parts.append(np.full(8, -0.0))
    parts.append(bits_to_f32([0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA00000, 0xFFFFFFFF, 0x7FBFE000,
                              0x7F80FFFF, 0xFF81FFFF]))
    return np.concatenate([np.asarray(p, dtype=f32) for p in parts])


def q8_0_inputs(rng):
    blocks = []
    for _ in range(24):  # normal blocks at many scales, some with an outlier
        b = rng.standard_normal(32) * 2.0 ** rng.uniform(-12, 12)
        if rng.random() < 0.3:
            b[rng.integers(32)] *= 20
        blocks.append(b)
    blocks.append(np.zeros(32))                      # all zeros
    blocks.append(np.full(32, -0.0))                 # all -0.0
    z = np.zeros(32); z[0] = -0.0; blocks.append(z)  # -0.0 first
    for i, j in ((3, 17), (20, 5)):                  # the max magnitude twice, opposite signs
        b = rng.uniform(-1, 1, 32); b[i] = 1.75; b[j] = -1.75; blocks.append(b)
    for e in (0, -3, 4):                             # d = 2^e exactly: x / d = k + 0.5, ties away from zero
        k = rng.integers(-127, 127, 32) + 0.5
        k[0] = 127
        k[1], k[2], k[3], k[4] = 0.5, -0.5, 126.5, -126.5
        blocks.append(k * 2.0 ** e)
    blocks.append(np.arange(-16, 16) + 0.5)          # amax 15.5: d inexact
    blocks.append(rng.standard_normal(32) * 1e-5)    # d a subnormal half
    blocks.append(rng.standard_normal(32) * 1e7)     # d beyond the half range: inf
    b = rng.standard_normal(32); b[7] = 65504 * 127; blocks.append(b)
    t = np.zeros(32); t[0], t[1], t[2] = 1e-39, -5e-40, 3e-40; blocks.append(t)  # tiny: 1 / d overflows
    return np.concatenate([np.asarray(b, dtype=f32) for b in blocks])


def q4_0_inputs(rng):
    blocks = []
    for _ in range(24):
        b = rng.standard_normal(32) * 2.0 ** rng.uniform(-12, 12)
        if rng.random() < 0.3:
            b[rng.integers(32)] *= 20
        blocks.append(b)
    blocks.append(np.zeros(32))
    blocks.append(np.full(32, -0.0))
    z = np.zeros(32); z[0] = -0.0; blocks.append(z)
    z = np.full(32, -0.0); z[0] = 0.0; blocks.append(z)
    for i, j in ((3, 17), (20, 5)):
        b = rng.uniform(-1, 1, 32); b[i] = 1.75; b[j] = -1.75; blocks.append(b)
    for mx, e in ((-8, 0), (8, 0), (-8, -4), (8, 3)):  # d = -mx / 8 = +-2^e: x / d + 8.5 lands on integers
        k = rng.integers(-8, 8, 32) + 0.5
        k[0] = mx
        k[1], k[2], k[3], k[4] = 0.5, -0.5, 7.5, -7.5
        blocks.append(k * 2.0 ** e)
    blocks.append(np.arange(-16, 16) + 0.5)
    blocks.append(rng.standard_normal(32) * 1e-6)
    blocks.append(rng.standard_normal(32) * 1e6)    # d beyond the half range
    t = np.zeros(32); t[0], t[1], t[2] = 1e-39, -5e-40, 3e-40; blocks.append(t)  # tiny
    return np.concatenate([np.asarray(b, dtype=f32) for b in blocks])


# ---- random valid blocks for dequantize -----------------------------------------------------------

# ggml type -> (number of blocks, byte offsets of the f16 scale fields in a block)
DEQUANT_CASES = [
    (T.Q4_0, 64, (0,)),
    (T.Q4_1, 64, (0, 2)),
    (T.Q5_0, 64, (0,)),
    (T.Q5_1, 64, (0, 2)),
    (T.Q8_0, 64, (0,)),
    (T.Q2_K, 8, (80, 82)),
    (T.Q3_K, 8, (108,)),
    (T.Q4_K, 8, (0, 2)),
    (T.Q5_K, 8, (0, 2)),
    (T.Q6_K, 8, (208,)),
    (T.Q8_K, 8, ()),  # its d is a float32 at offset 0
]


def random_blocks(rng, qtype, nb, half_offsets):
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, (nb, type_size), dtype=np.uint8)
    for off in half_offsets:
        blocks[:, off:off + 2] = random_halves(rng, nb).view(np.uint8).reshape(nb, 2)
    if qtype == T.Q8_K:
        d = (np.exp2(rng.uniform(-20, 4, nb)) * np.where(rng.random(nb) < 0.5, -1, 1)).astype(f32)
        blocks[:, 0:4] = d.view(np.uint8).reshape(nb, 4)
    return blocks.reshape(-1)


def dequantize_q8_k(data):
    blocks = data.reshape(-1, 292)
    d = blocks[:, 0:4].copy().view(np.float32)  # (nb, 1)
    q = blocks[:, 4:260].view(np.int8).astype(np.float32)
    return (d * q).reshape(-1)


# ---- output -------------------------------------------------------------------------------------

def write_case(name, qtype, inputs, data, output, note, summary):
    n = output.size
    assert inputs is None or inputs.size == n
    assert output.dtype == np.float32 and data.dtype == np.uint8
    n_in = 0 if inputs is None else n
    raw = b"GQF1" + struct.pack("<IQQQ", int(qtype), n, n_in, data.size)
    if inputs is not None:
        raw += inputs.astype("<f4").tobytes()
    raw += data.tobytes() + output.astype("<f4").tobytes()
    hexed = raw.hex()
    with open(os.path.join(OUT, name), "w") as f:
        f.write(f"# {name}: {note}. Written by tools/quants_reference/make_fixtures.py (format there).\n")
        for i in range(0, len(hexed), 64):
            f.write(hexed[i:i + 64] + "\n")
    summary.append(f"{name:22s} {qtype.name:5s} n={n:5d} inputs={n_in:5d} bytes={data.size:5d} "
                   f"file={len(raw):6d} sha256={hashlib.sha256(raw).hexdigest()[:16]}  {note}")
    return len(raw)


def main():
    os.makedirs(OUT, exist_ok=True)
    summary = [f"gguf {GGUF_VERSION}, numpy {np.__version__}, python {platform.python_version()}, "
               f"{platform.machine()}", "format: see make_fixtures.py (GQF1)"]
    total = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the tiny blocks and the NaN inputs
        for qtype, make, seed, note in (
                (T.F16, f16_inputs, 1601, "normals, half ties +-1 ulp, subnormals, overflow, zeros, NaNs"),
                (T.BF16, bf16_inputs, 1602, "normals, bf16 ties +-1 ulp, float subnormals, overflow, NaNs"),
                (T.Q8_0, q8_0_inputs, 1603, "random, zeros, -0.0, +-max twice, .5 ties, half sub/overflow, tiny"),
                (T.Q4_0, q4_0_inputs, 1604, "random, zeros, -0.0 first, +-max twice, .5 ties, overflow, tiny")):
            x = make(np.random.default_rng(seed)).astype(f32)
            if qtype == T.F16:
                data = quants.quantize(x, qtype).view(np.uint8).reshape(-1)
            else:
                data = np.asarray(quants.quantize(x, qtype), dtype=np.uint8).reshape(-1)
            y = np.asarray(quants.dequantize(data, qtype), dtype=np.float32).reshape(-1)
            total += write_case(f"quantize_{qtype.name.lower()}.hex", qtype, x, data, y, note, summary)
        for qtype, nb, offsets in DEQUANT_CASES:
            rng = np.random.default_rng(2000 + int(qtype))
            data = random_blocks(rng, qtype, nb, offsets)
            if qtype == T.Q8_K:
                y = dequantize_q8_k(data)
                note = "random blocks; output from ggml's dequantize_row_q8_K in numpy (gguf.quants lacks Q8_K)"
            else:
                y = np.asarray(quants.dequantize(data, qtype), dtype=np.float32).reshape(-1)
                note = "random blocks, finite f16 scales"
            total += write_case(f"dequantize_{qtype.name.lower()}.hex", qtype, None, data, y, note, summary)
    summary.append(f"total {total} bytes in {len(summary) - 2} files")
    print("\n".join(summary))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Lists a GGUF file's keys and tensors as PyPI gguf's GGUFReader sees them, in the canonical text
that tests/pipeline/export_checks.hpp prints from rcpu's reader (the test compares the two):
  key<TAB>type<TAB>value      ints in decimal, FLOAT32/FLOAT64 as f/d + IEEE bits in hex, BOOL 0/1,
                              STRING as s + hex bytes, arrays as [element type;count;crc32 of the
                              packed elements (strings: each followed by a newline)]
  T<TAB>name<TAB>type<TAB>dim0...<TAB>crc32 of the tensor's bytes
Usage: gguf_py_dump.py FILE.gguf   (needs gguf==0.19.0 and numpy)"""
import sys
import zlib

import numpy as np
from gguf import GGUFReader, GGUFValueType


def scalar(vtype, part):
    if vtype == GGUFValueType.FLOAT32:
        return "f%08x" % int(np.asarray(part, dtype=np.float32).view(np.uint32)[0])
    if vtype == GGUFValueType.FLOAT64:
        return "d%016x" % int(np.asarray(part, dtype=np.float64).view(np.uint64)[0])
    if vtype == GGUFValueType.BOOL:
        return "1" if bool(part[0]) else "0"
    if vtype == GGUFValueType.STRING:
        return "s" + bytes(part).hex()
    return str(int(part[0]))


def main(path):
    r = GGUFReader(path)
    out = []
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        t = f.types[0]
        if t == GGUFValueType.ARRAY:
            et = f.types[1] if len(f.types) > 1 else GGUFValueType.UINT8
            crc = 0
            for i in f.data:
                part = f.parts[i]
                if et == GGUFValueType.STRING:
                    crc = zlib.crc32(bytes(part) + b"\n", crc)
                else:
                    crc = zlib.crc32(np.ascontiguousarray(part).tobytes(), crc)
            out.append("%s\t%d\t[%d;%d;%d]" % (name, int(t), int(et), len(f.data), crc))
        else:
            out.append("%s\t%d\t%s" % (name, int(t), scalar(t, f.parts[f.data[0]])))
    for t in r.tensors:
        raw = bytes(r.data[t.data_offset:t.data_offset + t.n_bytes])
        dims = "\t".join(str(int(d)) for d in t.shape)
        out.append("T\t%s\t%d\t%s\t%d" % (t.name, int(t.tensor_type), dims, zlib.crc32(raw)))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])

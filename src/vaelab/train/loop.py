"""The training loop: one plain function, :func:`train`.

Per step: draw a batch on the device, compute ``model.loss(x, step)`` (under autocast when
AMP is on), backpropagate the model loss and every extra group's loss in one backward pass,
average gradients across ranks, clip, skip the update when the loss or the gradient norm is
non-finite or above ``skip_threshold`` (without a host sync where the optimizer is fused),
step every optimizer and schedule, update the EMA, and accumulate the loss terms on the
device. Every ``log_every`` steps the terms are gathered (the only host sync), logged and the
guard rails checked; every ``checkpoint_every`` steps a checkpoint is written atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import vaelab
from vaelab.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    read_yaml,
    save_config,
)
from vaelab.data import load_dataset
from vaelab.data.batching import make_batcher
from vaelab.data.preprocess import resize_dataset
from vaelab.models.build import build_model, write_run_info
from vaelab.rundir import RunDir, atomic_write_text, create_run_dir, default_run_path, open_run_dir
from vaelab.train import checkpoint as ckpt
from vaelab.train.distributed import (
    DistInfo,
    average_gradients,
    barrier,
    broadcast_module,
    init_distributed,
    shutdown,
)
from vaelab.train.ema import EMA
from vaelab.train.errors import CheckpointError, TrainingDiverged
from vaelab.train.evaluation import evaluate_loss
from vaelab.train.logging import RunLogger, TermAccumulator, make_progress, read_log
from vaelab.train.optim import build_optimizer, lr_factor, supports_found_inf
from vaelab.train.perf import tune_glibc_allocator

logger = logging.getLogger(__name__)
_total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    target_steps: int
    skipped: int
    last_log: dict[str, Any]


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA if available (this rank's GPU), else MPS, else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {name!r} was asked for, but CUDA is not available here")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to stop after the current step and write a checkpoint;
    a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("stop requested: finishing this step and writing a checkpoint")

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _resolve_config(cfg: Config | None, resume: str | Path | None, overrides: list[str]) -> Config:
    if resume is not None:
        run = open_run_dir(resume)
        values = apply_overrides(read_yaml(run.config), overrides)
        return config_from_dict(values, source=str(run.config))
    if cfg is None:
        raise ConfigError("give a config, a preset, or --resume RUN_DIR")
    if overrides:
        return config_from_dict(apply_overrides(cfg.to_dict(), overrides))
    return cfg


def train(
    cfg: Config | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    overrides: list[str] | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    name: str = "run",
    stop_at: int | None = None,
) -> TrainResult:
    """Train ``cfg`` into a new run directory ``out``, or continue the run ``resume``.

    ``overrides`` (``key=value``) apply to the config, also on resume (e.g.
    ``train.steps=20000`` to train longer; schedules that depend on ``train.steps``, like
    cosine, then change too). ``stop_at`` ends this call after that step with a checkpoint,
    leaving the run to be resumed (for jobs with a time limit). Under ``torchrun`` every
    process calls this; rank 0 writes the files.
    """
    cfg = _resolve_config(cfg, resume, overrides or [])
    dist_info = init_distributed(resolve_device(cfg.device).type)
    try:
        device = resolve_device(cfg.device, dist_info.local_rank)
        if resume is not None:
            run = open_run_dir(resume)
        else:
            path = Path(out) if out is not None else default_run_path(name)
            run = create_run_dir(path, overwrite=overwrite) if dist_info.is_main else RunDir(path)
        if dist_info.is_main:
            save_config(cfg, run.config)
        barrier(dist_info)
        show = cfg.train.progress if progress is None else progress
        return _train(cfg, run, resume is not None, device, dist_info, show, stop_at)
    finally:
        shutdown(dist_info)


def _train(
    cfg: Config,
    run: RunDir,
    resuming: bool,
    device: torch.device,
    dist_info: DistInfo,
    progress: bool,
    stop_at: int | None,
) -> TrainResult:
    tc, dc = cfg.train, cfg.data
    world, rank = dist_info.world_size, dist_info.rank
    if tc.batch_size % world:
        raise ConfigError(
            f"train.batch_size: {tc.batch_size} does not split over {world} "
            "processes; use a multiple of the number of processes"
        )
    torch.manual_seed(cfg.seed)
    if device.type == "cpu" and tc.tune_allocator:
        tune_glibc_allocator()

    # -- data -------------------------------------------------------------------------------
    data_kwargs = dict(root=dc.root, path=dc.path, download=dc.download, **dc.options)
    dataset = resize_dataset(load_dataset(dc.name, split=dc.split, **data_kwargs), dc.image_size)
    eval_set = None
    if dc.eval_split:
        eval_set = resize_dataset(
            load_dataset(dc.name, split=dc.eval_split, **data_kwargs), dc.image_size
        )
    loaded = {dc.split: dataset, **({dc.eval_split: eval_set} if eval_set is not None else {})}
    batcher = make_batcher(
        dataset,
        tc.batch_size // world,
        device=device,
        seed=cfg.seed,
        transform=dc.transform,
        bits=dc.bits,
        rank=rank,
        world_size=world,
        mode=dc.batcher,
        num_workers=dc.num_workers,
        channels_last=tc.channels_last,
    )

    # -- model, optimizers, schedules -------------------------------------------------------
    model = build_model(cfg, dataset.image_shape, len(dataset)).to(device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dist_info.enabled:
        broadcast_module(model)
    groups = model.optimizer_groups()
    optimizers = {}
    for group, params in groups.items():
        settings = dict(
            lr=tc.lr,
            betas=tc.betas,
            eps=tc.eps,
            weight_decay=tc.weight_decay,
            momentum=tc.momentum,
            name=tc.optimizer,
        )
        if group != "model":
            settings.update(model.optimizer_settings(group))
        optimizers[group] = build_optimizer(settings.pop("name"), params, **settings)
    factor = lr_factor(
        tc.schedule, tc.warmup_steps, tc.steps, tc.min_lr / tc.lr if tc.lr > 0 else 0.0
    )
    schedulers = {g: torch.optim.lr_scheduler.LambdaLR(o, factor) for g, o in optimizers.items()}
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tc.amp)
    scaler = torch.amp.GradScaler(device.type) if tc.amp == "fp16" else None
    ema = EMA(model, tc.ema_decay) if tc.ema_decay is not None else None
    all_params = [p for params in groups.values() for p in params]
    model_params = list(groups["model"])
    fused = scaler is None and all(supports_found_inf(o) for o in optimizers.values())

    # -- resume -----------------------------------------------------------------------------
    start = 0
    skipped_total = 0
    if resuming:
        found = ckpt.load_latest(run.checkpoints, map_location=device)
        if found is None:
            logger.warning("no readable checkpoint in %s: starting from step 0", run.checkpoints)
        else:
            path, state = found
            start = _restore(state, model, optimizers, schedulers, ema, scaler, batcher)
            skipped_total = int(state["skipped_total"])
            logger.info("resumed from %s (step %d)", path, start)
        if dist_info.is_main:
            _truncate_log(run, start)
    if dist_info.is_main:
        write_run_info(
            run,
            {
                "image_shape": list(dataset.image_shape),
                "dataset_size": len(dataset),
                "dataset": dc.name,
                "vaelab_version": vaelab.__version__,
                "torch_version": torch.__version__,
                "device": str(device),
                "world_size": world,
            },
        )

    loss_fn = torch.compile(model.loss) if tc.compile else model.loss
    autocast = (
        torch.autocast(device.type, dtype=amp_dtype)
        if amp_dtype is not None
        else contextlib.nullcontext()
    )
    log = RunLogger(run.path, enabled=dist_info.is_main)
    bar = make_progress(tc.steps, start, progress and dist_info.is_main)
    terms = TermAccumulator()
    skip_run = torch.zeros((), dtype=torch.int64, device=device)  # consecutive skips, on device
    worst_run = torch.zeros((), dtype=torch.int64, device=device)
    skipped = torch.zeros((), dtype=torch.int64, device=device)  # since the last log
    threshold = math.inf if tc.skip_threshold is None else tc.skip_threshold
    last: dict[str, Any] = {}
    tick, tick_step = time.perf_counter(), start

    def save(step_done: int) -> None:
        if dist_info.is_main:
            state = _snapshot(model, optimizers, schedulers, ema, scaler, batcher)
            state["skipped_total"] = skipped_total
            state["config"] = cfg.to_yaml()
            ckpt.save_checkpoint(run.checkpoints, step_done, state, tc.keep_checkpoints)
            _write_frame(model, ema, run, step_done)

    end = tc.steps if stop_at is None else min(stop_at, tc.steps)
    step = start
    model.train()
    with _StopFlag() as stop:
        while step < end:
            batch = batcher.next()
            with autocast:
                out = loss_fn(batch.x, step)
                total = out.loss + sum(out.group_losses.values())
            for opt in optimizers.values():
                opt.zero_grad(set_to_none=True)
            (scaler.scale(total) if scaler is not None else total).backward()
            if dist_info.enabled:
                average_gradients(all_params, world)
            if scaler is not None:
                for opt in optimizers.values():
                    scaler.unscale_(opt)
            if tc.grad_clip is None and _total_norm is not None:  # no multiply of grads by 1
                norm = _total_norm(
                    [p.grad for p in model_params if p.grad is not None], foreach=True
                )
            else:
                clip = math.inf if tc.grad_clip is None else tc.grad_clip
                norm = torch.nn.utils.clip_grad_norm_(model_params, clip, foreach=True)
            bad = ~torch.isfinite(norm) | ~torch.isfinite(total.detach()) | (norm > threshold)
            _step_optimizers(optimizers, scaler, bad, fused)
            with warnings.catch_warnings():  # a skipped first update is not a misordered call
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                for sched in schedulers.values():
                    sched.step()
            if ema is not None:
                ema.update(model)
            skip_run = (skip_run + 1) * bad
            worst_run = torch.maximum(worst_run, skip_run)
            skipped += bad
            good = ~bad
            terms.add(
                {
                    "loss": out.loss,
                    **out.terms,
                    **{f"{g}_loss": v for g, v in out.group_losses.items()},
                    "grad_norm": torch.where(good, norm.float(), 0.0),
                    "updates": good.float(),
                }
            )
            step += 1
            if bar is not None:
                bar.update(1)
            stopping = stop.requested or step == end
            due_log = step % tc.log_every == 0 or stopping
            if due_log:
                values = terms.mean()
                n_good = values.pop("updates") * (step - tick_step)
                values["grad_norm"] = values["grad_norm"] * (step - tick_step) / max(n_good, 1)
                now = time.perf_counter()
                values["images_per_s"] = (step - tick_step) * tc.batch_size / (now - tick)
                values["lr"] = schedulers["model"].get_last_lr()[0]
                n_skipped, longest = int(skipped), int(worst_run)
                skipped_total += n_skipped
                values["skipped"] = n_skipped
                values["skipped_total"] = skipped_total
                log.log(step, values)
                last = values
                if bar is not None:
                    bar.set_postfix(
                        {
                            k: f"{values[k]:.4g}"
                            for k in ("loss", "recon", "kl")
                            if isinstance(values.get(k), float)
                        }
                    )
                skipped.zero_()
                worst_run.zero_()
                tick, tick_step = time.perf_counter(), step
                if longest >= tc.max_skips_in_a_row:
                    newest = ckpt.list_checkpoints(run.checkpoints)
                    where = newest[-1][1] if newest else "none was written yet"
                    raise TrainingDiverged(
                        f"{longest} updates in a row were skipped before step {step} (non-finite "
                        f"loss or gradient norm above train.skip_threshold={tc.skip_threshold}); "
                        f"stopping. The last good checkpoint: {where}. Lower train.lr, set "
                        "train.grad_clip, or raise train.skip_threshold."
                    )
            if eval_set is not None and cfg.eval.every and step % cfg.eval.every == 0:
                _log_eval(model, ema, eval_set, cfg, device, step, log)
            every = cfg.eval.metrics_every
            if cfg.eval.metrics and every and step % every == 0 and step < tc.steps:
                _log_metrics(model, ema, loaded, cfg, device, step, log, run, dist_info)
            if step % tc.checkpoint_every == 0 or stopping:
                save(step)
            if stopping:
                break
    if bar is not None:
        bar.close()

    if eval_set is not None and step == tc.steps:
        last_eval = _log_eval(model, ema, eval_set, cfg, device, step, log)
        last.update({f"eval_{k}": v for k, v in last_eval.items()})
    if dist_info.is_main and step == tc.steps:
        weights = ema.state_dict() if ema is not None else model.state_dict()
        meta = {
            "step": str(step),
            "ema": str(ema is not None).lower(),
            "model": str(cfg.model.name),
            "objective": str(cfg.objective.name),
        }
        ckpt.save_weights(run.weights, weights, meta)
        if cfg.eval.metrics:
            _log_metrics(model, ema, loaded, cfg, device, step, log, run, dist_info)
    log.close()
    return TrainResult(run.path, step, tc.steps, skipped_total, last)


def _step_optimizers(
    optimizers: dict[str, torch.optim.Optimizer],
    scaler: torch.amp.GradScaler | None,
    bad: torch.Tensor,
    fused: bool,
) -> None:
    """Apply the update unless ``bad``: on-device for fused optimizers, else one sync."""
    if scaler is not None:
        if bool(bad):  # the scaler skips non-finite steps itself; this covers the threshold
            scaler.update()
            return
        for opt in optimizers.values():
            scaler.step(opt)
        scaler.update()
        return
    if fused:
        flag = bad.float()
        for opt in optimizers.values():
            opt.found_inf = flag
            opt.grad_scale = None
            opt.step()
        return
    if not bool(bad):
        for opt in optimizers.values():
            opt.step()


def _log_eval(model, ema, dataset, cfg: Config, device, step: int, log: RunLogger) -> dict:
    context = ema.applied(model) if ema is not None else contextlib.nullcontext(model)
    with context:
        values = evaluate_loss(
            model,
            dataset,
            cfg.eval.batch_size,
            device,
            transform=cfg.data.transform,
            bits=cfg.data.bits,
            seed=cfg.eval.seed,
        )
    model.train()
    log.log(step, values, prefix="eval")
    return values


def _write_frame(model, ema, run: RunDir, step: int) -> None:
    """The across-training traversal frame (``vaelab plot RUN training-gif``)."""
    from vaelab.viz.plots import write_training_frame

    context = ema.applied(model) if ema is not None else contextlib.nullcontext(model)
    with context:
        write_training_frame(model, run, step)


def _log_metrics(model, ema, loaded, cfg: Config, device, step: int, log, run, dist_info) -> None:
    """``eval.metrics`` of the current (EMA) weights: logged, and merged into metrics.json."""
    if not dist_info.is_main:
        return
    from vaelab.metrics.evaluate import evaluate_model, write_metrics

    context = ema.applied(model) if ema is not None else contextlib.nullcontext(model)
    with context:
        results = evaluate_model(model, cfg, device=device, loaded=loaded)
    model.train()
    for result in results:
        numbers = {k: v for k, v in result.values.items() if isinstance(v, int | float)}
        log.log(step, numbers, prefix=f"metric_{result.metric}")
    write_metrics(run, results, step)


def _snapshot(model, optimizers, schedulers, ema, scaler, batcher) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizers": {g: o.state_dict() for g, o in optimizers.items()},
        "schedulers": {g: s.state_dict() for g, s in schedulers.items()},
        "ema": ema.state_dict() if ema is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": ckpt.rng_state(),
        "batcher": batcher.state_dict(),
    }


def _restore(state, model, optimizers, schedulers, ema, scaler, batcher) -> int:
    model.load_state_dict(state["model"])
    if set(state["optimizers"]) != set(optimizers):
        raise CheckpointError(
            f"checkpoint optimizer groups {sorted(state['optimizers'])} "
            f"differ from the model's {sorted(optimizers)}"
        )
    for group, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][group])
        schedulers[group].load_state_dict(state["schedulers"][group])
    if ema is not None:
        if state["ema"] is None:
            raise CheckpointError("train.ema_decay is set but the checkpoint has no EMA")
        ema.load_state_dict(state["ema"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    ckpt.set_rng_state(state["rng"])
    batcher.load_state_dict(state["batcher"])
    return int(state["step"])


def _truncate_log(run: RunDir, step: int) -> None:
    """Drop log records written after the checkpoint we resume from (they will be redone)."""
    if not run.train_log.is_file():
        return
    kept = [r for r in read_log(run.train_log) if int(r.get("step", 0)) <= step]
    atomic_write_text(run.train_log, "".join(json.dumps(r) + "\n" for r in kept))


def config_summary(cfg: Config) -> str:
    """One line: model, objective, data, steps, batch."""
    obj = cfg.objective.name or "-"
    params = dataclasses.asdict(cfg.objective.params) if cfg.objective.params else {}
    extra = ", ".join(f"{k}={v}" for k, v in params.items() if k in ("beta", "gamma", "alpha"))
    return (
        f"{cfg.model.name} + {obj}{f' ({extra})' if extra else ''} on {cfg.data.name}, "
        f"{cfg.train.steps} steps of batch {cfg.train.batch_size}"
    )

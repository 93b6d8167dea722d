"""Training: a GRAPH-mode train step, the loop, validation, checkpoints and exact resume.

The trainer never draws. It emits events (see events.py) that the launcher renders, and writes
the run folder (named, claimed and locked by runs.py):

    runs/<name>/config.yaml     the resolved config (what --resume checks against; runs.py)
                log.txt         one text line per log/validation/checkpoint event
                metrics.jsonl   every event as JSON
                plot.svg        loss and validation PSNR over steps (plot.py), rewritten at each
                                validation
                report/index.html   the last validation, image by image (report.py), with the curve
                last.ckpt       weights + Adam state + step (every ckpt_every steps and at exit),
                                and the weight average (ema.py) when train.ema_decay is on
                best.ckpt       weights of the best validation PSNR
                ckpt/step_NNNNNNN.ckpt   the last `keep_checkpoints` periodic ones (full state)
                .wdsr.lock      held by the process training it: one training per run folder

Exact resume: the data of step s is a pure function of (seed, s) (pipeline.TrainPatches), the
learning rate of step s is ``lrs[global_step]`` inside Adam, and the checkpoint holds the
weights, both Adam moments, the beta powers and the global step. So on the CPU an interrupted
and resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import events
from .config import Config
from .ema import WeightAverage
from .errors import WdsrError
from .fileio import atomic_write
from .plot import training_curve_svg
from .runs import ResumeState
from .testpoint import hold_if_asked

# ------------------------------------------------------------------------------ resume


def check_resume_compatible(cfg: Config, meta: dict[str, Any], dataset_id: str | None,
                            allow_new_data: bool) -> None:
    """The resumed checkpoint fits this config and data (``dataset_id`` None: the model only,
    for a plan that does not open the data)."""
    saved = meta.get("config", {})
    if saved.get("model") != cfg.to_dict()["model"]:
        raise WdsrError("the checkpoint's model config differs from the run config",
                        "resume with the original model settings, or use --init for new ones")
    if dataset_id is not None and meta.get("dataset_id") != dataset_id and not allow_new_data:
        raise WdsrError(
            f"the run was trained on dataset {meta.get('dataset_id')}, the prepared data is now "
            f"{dataset_id}", "pass --allow-data-change to continue on the new data")


# ------------------------------------------------------------------------------ the trainer


@dataclass
class TrainOptions:
    run_dir: Path
    resume: ResumeState | None = None
    init_checkpoint: Path | None = None
    allow_data_change: bool = False
    stop_after: int | None = None  # stop (saving last) after this many steps of this process
    rank: int = 0
    world_size: int = 1
    patches: Any = None  # an already opened pipeline.TrainPatches (see open_patches)


class Trainer:
    def __init__(self, cfg: Config, opts: TrainOptions, emit: events.Emit) -> None:
        self.cfg = cfg
        self.opts = opts
        self.rank = opts.rank
        self.world_size = opts.world_size
        self.is_main = opts.rank == 0
        self._emit_to = emit
        self.run_dir = Path(opts.run_dir)
        self.loss_points: list[tuple[int, float]] = []
        self.psnr_points: list[tuple[int, float]] = []
        self.best_psnr = -math.inf
        self.bicubic_psnr: float | None = None
        self.init_loaded = 0
        self.init_from: Path | None = None

    # -- plumbing
    def emit(self, kind: str, /, **fields: Any) -> None:
        event = events.make(kind, self.rank, **fields)
        self._emit_to(event)
        if self.is_main:
            with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(events.encode(event) + "\n")
            line = self._log_line(event)
            if line:
                with open(self.run_dir / "log.txt", "a", encoding="utf-8") as f:
                    f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")

    @staticmethod
    def _log_line(e: events.Event) -> str | None:
        t = e["type"]
        if t == "step":
            return (f"step {e['step']} epoch {e['epoch']} loss {e['loss_avg']:.4f} "
                    f"lr {e['lr']:.3g} {e['patches_per_s']:.1f} patches/s "
                    f"data-wait {100 * e['data_wait']:.0f}%")
        if t == "validation":
            return (f"validation step {e['step']}: PSNR {e['psnr']:.3f} dB SSIM {e['ssim']:.4f} "
                    f"(best {e['best_psnr']:.3f}{', new best' if e['is_best'] else ''})")
        if t == "checkpoint":
            return f"checkpoint {e['kind']} step {e['step']}: {e['path']}"
        if t in ("start", "done", "error"):
            return f"{t}: " + json.dumps({k: v for k, v in e.items() if k not in ("type", "time")})
        return None

    # -- setup
    def _build(self) -> None:
        import mindspore as ms

        from .checkpoints import EMA_PREFIX, assign_parameters, init_parameters
        from .data.pipeline import load_validation
        from .model import build_model
        from .schedule import learning_rates

        c, t, d = self.cfg, self.cfg.train, self.cfg.data
        self.patches = self.opts.patches or open_patches(c, self.rank, self.world_size)
        self.validation = []
        if self.is_main:
            self.validation = load_validation(d.prepared, c.model.scale, t.val_images,
                                              c.degrade.val_spec)
        self.net = build_model(c.model)
        resume = self.opts.resume
        resuming = resume is not None and resume.params is not None
        self.init_from = self.opts.init_checkpoint or (Path(t.init) if t.init else None)
        if self.init_from is not None and not resuming:  # a checkpoint holds its own weights
            params, _ = init_parameters(self.init_from)
            loaded = assign_parameters(self.net, params, self.init_from, strict=False)
            if not loaded:
                raise WdsrError(f"no parameter of '{self.init_from}' fits this model",
                                "--init needs a checkpoint of the same variant and width")
            self.init_loaded = len(loaded)  # parameters whose name and shape matched

        self.precision = self._resolve_precision()
        self.lrs = learning_rates(t)
        self.step_cell = build_train_step(self.net, t, self.lrs, self.precision)
        self.optimizer = self.step_cell.optimizer
        self.start_step = 0
        if resuming:
            check_resume_compatible(self.cfg, resume.meta, self.patches.dataset_id,
                                    self.opts.allow_data_change)
            # The lr array is derived from the config (so train.steps may be extended on resume).
            state = {k: v for k, v in resume.params.items()
                     if k != "learning_rate" and not k.startswith(EMA_PREFIX)}
            missing = ms.load_param_into_net(self.step_cell, state)
            missing = [m for m in (missing[0] if isinstance(missing, tuple) else missing)
                       if m != "learning_rate" and not m.startswith("scale_sense")]
            if missing:
                raise WdsrError(f"checkpoint '{resume.checkpoint}' lacks {missing[:3]}",
                                "it is not a training checkpoint of this run")
            self.start_step = int(resume.meta["step"])
            best = resume.meta.get("best_psnr")
            self.best_psnr = -math.inf if best is None else float(best)
            self._reload_history()
        # The weight average lives on rank 0 only: it validates and writes the checkpoints, and
        # after each all-reduced step every rank holds the same weights.
        self.average = None
        if t.ema_decay > 0 and self.is_main:
            self.average = WeightAverage(self.net, t.ema_decay, self.start_step,
                                         resume.params if resuming else None)
            self.average_net = build_model(c.model)  # validated and saved as best.ckpt

    def _resolve_precision(self) -> str:
        from .runtime import current_info

        info = current_info()
        return resolve_precision(self.cfg, info.device_target if info else "CPU")

    def _reload_history(self) -> None:
        """Bring back the plot's points (up to the resumed step) from metrics.jsonl."""
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return
        for line in path.read_text(encoding="utf-8").splitlines():
            e = events.decode(line)
            if not e or e.get("step", 0) > self.start_step:
                continue
            if e["type"] == "step":
                self.loss_points.append((e["step"], e["loss_avg"]))
            elif e["type"] == "validation":
                self.psnr_points.append((e["step"], e["psnr"]))
            elif e["type"] == "start" and e.get("bicubic_psnr") is not None:
                self.bicubic_psnr = e["bicubic_psnr"]

    # -- checkpoints
    def _meta(self, kind: str, step: int, metrics: dict | None = None) -> dict[str, Any]:
        return {"kind": kind, "model": self.cfg.to_dict()["model"], "scale": self.cfg.model.scale,
                "step": step, "metrics": metrics or {}, "dataset_id": self.patches.dataset_id,
                "config": self.cfg.to_dict(), "protocol": self.cfg.eval.protocol,
                "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
                "run": self.run_dir.name, "seed": self.cfg.train.seed,
                "world_size": self.world_size}

    def save_training_state(self, step: int) -> None:
        if not self.is_main:
            return
        from .checkpoints import save_checkpoint

        path = save_checkpoint(self.step_cell, self.run_dir / "last.ckpt", self._meta("last", step),
                               self._average_entries())
        self.emit("checkpoint", step=step, path=str(path), kind="last")

    def _average_entries(self) -> dict[str, np.ndarray] | None:
        return self.average.entries() if self.average else None

    def save_periodic(self, step: int) -> None:
        if not self.is_main:
            return
        from .checkpoints import save_checkpoint

        folder = self.run_dir / "ckpt"
        folder.mkdir(exist_ok=True)
        path = save_checkpoint(self.step_cell, folder / f"step_{step:07d}.ckpt",
                               self._meta("periodic", step), self._average_entries())
        for old in sorted(folder.glob("step_*.ckpt"))[:-self.cfg.train.keep_checkpoints]:
            old.unlink()
        self.emit("checkpoint", step=step, path=str(path), kind="periodic")

    # -- validation
    def validate(self, step: int) -> None:
        if not self.is_main or not self.validation:
            return
        from .evaluate import evaluate_pairs
        from .inference import Predictor
        from .report import ReportCollector

        # with a weight average, the average is what is validated and kept as best.ckpt
        net = self.average.copy_to(self.average_net) if self.average else self.net
        predictor = Predictor.from_network(net)
        collector = ReportCollector(self.cfg.model.scale, self.cfg.eval.protocol)
        result = evaluate_pairs(predictor, self.validation, self.cfg.model.scale,
                                self.cfg.eval.protocol, bicubic=True, on_arrays=collector.add)
        mean = result["mean"]
        self.net.set_train(True)
        psnr, ssim = float(mean["psnr"]), float(mean["ssim"])
        is_best = psnr > self.best_psnr
        if is_best:
            self.best_psnr = psnr
            from .checkpoints import save_checkpoint

            meta = self._meta("best", step, {"psnr": psnr, "ssim": ssim})
            meta.pop("config")  # best.ckpt is weights + metadata (what evaluate/upscale need)
            if self.average:
                meta["ema_decay"] = self.cfg.train.ema_decay
            path = save_checkpoint(net, self.run_dir / "best.ckpt", meta)
            self.emit("checkpoint", step=step, path=str(path), kind="best")
        self.psnr_points.append((step, psnr))
        self.emit("validation", step=step, psnr=psnr, ssim=ssim, best_psnr=self.best_psnr,
                  is_best=is_best, bicubic_psnr=self.bicubic_psnr, protocol=self.cfg.eval.protocol)
        curve = training_curve_svg(self.loss_points, self.psnr_points, self.bicubic_psnr,
                          self.cfg.train.loss)
        atomic_write(self.run_dir / "plot.svg", curve)
        self._write_report(step, result, collector, curve)

    def _write_report(self, step: int, result: dict[str, Any], collector, curve: str) -> None:
        """runs/<name>/report: this validation image by image, replaced at each validation."""
        from .report import write_report

        what = (f"the weight average (decay {self.cfg.train.ema_decay:g})" if self.average
                else "the network")
        facts = [("weights", f"{what} of run '{self.run_dir.name}' at step {step}"),
                 ("best.ckpt", f"{self.best_psnr:.3f} dB"),
                 ("dataset id", str(self.patches.dataset_id)),
                 ("data", f"validation images of '{self.cfg.data.prepared}'")]
        write_report(self.run_dir / "report", collector, result, facts, curve_svg=curve,
                     title=f"wdsr run {self.run_dir.name}: validation at step {step}",
                     overwrite=True)

    # -- the loop
    def run(self) -> dict[str, Any]:
        from mindspore import Tensor

        self._build()
        t, total = self.cfg.train, self.cfg.train.steps
        end = total if self.opts.stop_after is None else min(total, self.start_step
                                                             + self.opts.stop_after)
        if self.is_main and self.bicubic_psnr is None and self.validation:
            self.bicubic_psnr = bicubic_baseline(self.validation, self.cfg.model.scale,
                                                 self.cfg.eval.protocol)
        self.emit("start", total_steps=total, start_step=self.start_step, end_step=end,
                  run_dir=str(self.run_dir), world_size=self.world_size,
                  global_batch=self.cfg.data.batch_size * self.world_size,
                  dataset_id=self.patches.dataset_id, bicubic_psnr=self.bicubic_psnr,
                  resumed_from=str(self.opts.resume.checkpoint) if self.opts.resume
                  and self.opts.resume.checkpoint else None,
                  init_from=str(self.init_from) if self.init_loaded else None,
                  init_loaded=self.init_loaded)
        step = self.start_step
        loss_avg, window_start, window_wait, window_steps = None, time.perf_counter(), 0.0, 0
        global_batch = self.cfg.data.batch_size * self.world_size
        interrupted = False
        batches = self.patches.iterate(self.start_step, end, prefetch=self.cfg.data.prefetch)
        try:
            for s, lr_np, hr_np, wait in batches:
                loss = float(self.step_cell(Tensor(lr_np), Tensor(hr_np)).asnumpy()
                             if self.precision == "fp32"
                             else self.step_cell(Tensor(lr_np), Tensor(hr_np))[0].asnumpy())
                if not math.isfinite(loss):
                    raise WdsrError(f"the loss became {loss} at step {s + 1}",
                                    "lower train.lr or set train.clip_grad_norm")
                step = s + 1
                if self.average:
                    self.average.update()
                loss_avg = loss if loss_avg is None else 0.9 * loss_avg + 0.1 * loss
                window_wait += wait
                window_steps += 1
                if step % t.log_every == 0 or step == end:
                    elapsed = time.perf_counter() - window_start
                    self.loss_points.append((step, loss_avg))
                    self.emit("step", step=step, epoch=s // self.patches.steps_per_epoch + 1,
                              loss=loss, loss_avg=loss_avg, lr=float(self.lrs[s]),
                              patches_per_s=global_batch * window_steps / max(elapsed, 1e-9),
                              data_wait=window_wait / max(elapsed, 1e-9), total_steps=total)
                    window_start, window_wait, window_steps = time.perf_counter(), 0.0, 0
                if step % t.val_every == 0 or step == total:
                    self.validate(step)
                if step % t.ckpt_every == 0 or step == end:
                    self.save_training_state(step)
                    if step % t.ckpt_every == 0:
                        self.save_periodic(step)
                hold_if_asked(f"train-step-{step}")  # tests only (testpoint.py)
        except KeyboardInterrupt:
            interrupted = True
            step = self._applied_step(step)
            if self.average:
                self.average.catch_up(step)
            if step > self.start_step:
                self.save_training_state(step)
        finally:
            batches.close()
        self.emit("done", step=step, best_psnr=self.best_psnr if math.isfinite(self.best_psnr)
                  else None, interrupted=interrupted)
        return {"step": step, "best_psnr": self.best_psnr, "interrupted": interrupted,
                "run_dir": str(self.run_dir)}

    def _applied_step(self, counted: int) -> int:
        """The steps really applied when a KeyboardInterrupt arrives (Ctrl-C, or the launcher's
        stop signal): it can land after a train step has run but before ``step = s + 1``, and
        last.ckpt must not claim one step fewer than its weights hold. Adam's own counter
        knows (fp32; with fp16 loss scaling an overflowed step does not count)."""
        if self.precision != "fp32":
            return counted
        applied = int(self.optimizer.global_step.asnumpy().reshape(-1)[0])
        return applied if applied == counted + 1 else counted


def resolve_precision(cfg: Config, device_target: str) -> str:
    """fp32 or fp16 for this config on this device; impossible combinations are WdsrErrors
    (checked by the launcher before a run folder exists, and again by each rank)."""
    p = cfg.train.precision
    if p == "auto":
        return "fp32" if device_target == "CPU" else "fp16"
    if p == "fp16" and device_target == "CPU":
        raise WdsrError("fp16 training is not supported on the CPU",
                        "use --set train.precision=fp32 (or auto)")
    if p == "fp16" and cfg.train.clip_grad_norm > 0:
        raise WdsrError("gradient clipping is not available with fp16 loss scaling",
                        "set train.clip_grad_norm=0 or train.precision=fp32")
    return p


def build_train_step(net, t, lrs: np.ndarray, precision: str = "fp32"):
    """The GRAPH-mode train cell: L1 or L2 loss (``t.loss``), gradients (all-reduced when
    data-parallel), optional clipping by global norm, Adam with the per-step learning rates
    ``lrs``. Call it with (lr_batch, hr_batch); it returns the loss (fp32) or (loss, overflow,
    scale) (fp16)."""
    from mindspore import Tensor, nn, ops
    from mindspore import dtype as mstype

    class WithLoss(nn.Cell):
        def __init__(self, net, squared: bool):
            super().__init__(auto_prefix=False)  # keep parameter names = the network's
            self.net = net
            self.squared = squared  # a constant: the graph holds one of the two branches

        def construct(self, lr, hr):
            # fp32 even under fp16 (O2) training: a squared error of 256 overflows fp16
            err = ops.cast(self.net(lr) - hr, mstype.float32)
            if self.squared:
                return ops.mean(err * err)
            return ops.mean(ops.abs(err))

    class TrainStep(nn.TrainOneStepCell):
        """TrainOneStepCell (it sets up the all-reduce of gradients when data-parallel)
        plus optional clipping by global norm."""

        def __init__(self, net_with_loss, optimizer, clip_norm):
            super().__init__(net_with_loss, optimizer)
            self.clip_norm = clip_norm

        def construct(self, lr, hr):
            loss = self.network(lr, hr)
            sens = ops.fill(loss.dtype, loss.shape, self.sens)
            grads = self.grad(self.network, self.weights)(lr, hr, sens)
            grads = self.grad_reducer(grads)
            if self.clip_norm > 0:
                grads = ops.clip_by_global_norm(grads, self.clip_norm)
            self.optimizer(grads)
            return loss

    optimizer = nn.Adam(net.trainable_params(), learning_rate=Tensor(lrs), beta1=t.beta1,
                        beta2=t.beta2, eps=t.eps, weight_decay=t.weight_decay)
    with_loss = WithLoss(net, t.loss == "l2")
    if precision == "fp16":
        # One loss-scaling mechanism, MindSpore's own (the model zoo applied two).
        from mindspore import amp

        amp.auto_mixed_precision(with_loss, "O2")
        scaler = nn.DynamicLossScaleUpdateCell(loss_scale_value=2**12, scale_factor=2,
                                               scale_window=1000)
        step = nn.TrainOneStepWithLossScaleCell(with_loss, optimizer, scaler)
    else:
        step = TrainStep(with_loss, optimizer, float(t.clip_grad_norm))
    step.set_train(True)
    return step


def open_patches(cfg: Config, rank: int = 0, world_size: int = 1):
    """Open the prepared training data; every data problem is a WdsrError before any work."""
    from .data.pipeline import TrainPatches

    d, t = cfg.data, cfg.train
    return TrainPatches(d.prepared, cfg.model.scale, d.patch_size, d.batch_size, t.seed,
                        augment=d.augment, rank=rank, world_size=world_size,
                        degrade=cfg.degrade)


def bicubic_baseline(pairs, scale: int, protocol: str) -> float:
    """Mean PSNR of the MATLAB-bicubic upscale of each validation LR image."""
    from .data.resize import bicubic_upscale
    from .metrics import psnr

    values = [psnr(bicubic_upscale(lr, scale), hr, scale, protocol) for _, lr, hr in pairs]
    return float(np.mean(values))

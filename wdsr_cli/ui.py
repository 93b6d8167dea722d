"""The one place that draws: Rich console, tables, progress bars and error lines.

Tables and results go to stdout; progress and messages go to stderr so that
``wdsr evaluate --json - > out.json`` style piping stays clean.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def error(message: str, hint: str | None = None) -> None:
    """One line for the user: what is wrong, then (after ' - ') what to do."""
    text = f"[bold red]error:[/] {_escape(message)}"
    if hint:
        text += f" [dim]- {_escape(hint)}[/]"
    err.print(text, soft_wrap=True)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {_escape(message)}", soft_wrap=True)


def info(message: str) -> None:
    err.print(message, soft_wrap=True)


def _show_notes() -> None:
    """The core's notes (``warnings.warn(text, WdsrNote)``) as ``warning:`` lines, every time;
    other Python warnings as Python shows them."""
    import warnings

    from .core.errors import WdsrNote

    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if isinstance(category, type) and issubclass(category, WdsrNote):
            warn(str(message))
        else:
            original(message, category, filename, lineno, file, line)

    warnings.simplefilter("always", WdsrNote)
    warnings.showwarning = show


_show_notes()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]],
          footer: Sequence[object] | None = None) -> Table:
    t = Table(title=title, title_justify="left", show_footer=footer is not None)
    for i, name in enumerate(columns):
        justify = "left" if i == 0 else "right"
        foot = "" if footer is None else str(footer[i])
        t.add_column(name, justify=justify, footer=foot)
    for row in rows:
        t.add_row(*(str(c) for c in row))
    return t


def key_value_table(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    for k, v in rows:
        t.add_row(k, v)
    return t


def progress(unit: str = "items") -> Progress:
    """A progress bar with count, rate and ETA, drawn on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def rate_text(done: int, seconds: float, unit: str) -> str:
    return f"{done / seconds:.1f} {unit}/s" if seconds > 0 and done else ""


# ------------------------------------------------------------------------------ training view

#: Seconds between plain progress lines when the output is not a terminal.
PLAIN_LINE_INTERVAL = 30.0
#: The ETA follows the pace of the last this-many progress events of the lead rank (not the
#: average since the start, which a pause, e.g. Ctrl-Z or a busy machine, skews for hours).
ETA_WINDOW = 64


class TrainView:
    """One live table for a training run, fed with events (from one rank or many).

    Rows: one per rank (state, step, loss, patches/s, data wait), then the run's overall
    progress (step/total, epoch, lr, ETA) and validation (last and best PSNR vs bicubic).
    """

    lead = 0  # the rank whose progress the summary line follows

    def __init__(self, title: str, world_size: int = 1, console: Console | None = None,
                 line_interval: float = PLAIN_LINE_INTERVAL, clock=time.monotonic) -> None:
        from rich.live import Live

        self.title = title
        self.world_size = world_size
        self.ranks: dict[int, dict] = {r: {"state": "starting"} for r in range(world_size)}
        self.run: dict = {}
        self.pace: deque[tuple[float, int]] = deque(maxlen=ETA_WINDOW)  # (time, step)
        self.messages: list[str] = []
        self.console = console or err
        # Not a terminal (CI, nohup, a scheduler's log): Rich draws nothing until the end,
        # so print a plain line every line_interval seconds to show the run is alive.
        self.plain = not self.console.is_terminal
        self.line_interval, self.clock, self.last_line = line_interval, clock, None
        self.live = Live(self.render(), console=self.console, refresh_per_second=4,
                         transient=False)

    def __enter__(self) -> TrainView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.update(self.render())
        self.live.__exit__(*exc)

    def note(self, message: str) -> None:
        self.messages = (self.messages + [message])[-4:]
        self.live.update(self.render())

    def handle(self, event: dict) -> None:
        kind, rank = event.get("type"), int(event.get("rank", 0))
        row = self.ranks.setdefault(rank, {})
        if kind == "start":
            row["state"] = "training"
            self.run.update(total=event["total_steps"], step=event["start_step"],
                            start_step=event["start_step"], started=event["time"],
                            bicubic=event.get("bicubic_psnr"), run_dir=event.get("run_dir"),
                            global_batch=event.get("global_batch"))
        elif kind == "step":
            row.update(state="training", step=event["step"], loss=event["loss_avg"],
                       rate=event["patches_per_s"], wait=event["data_wait"])
            if rank == self.lead:
                self.run.update(step=event["step"], epoch=event["epoch"], lr=event["lr"],
                                now=event["time"], total=event.get("total_steps",
                                                                   self.run.get("total")))
                self.pace.append((event["time"], event["step"]))
        elif kind == "validation":
            self.run.update(psnr=event["psnr"], ssim=event["ssim"], best=event["best_psnr"],
                            bicubic=event.get("bicubic_psnr"), protocol=event.get("protocol"),
                            val_step=event["step"])
        elif kind == "checkpoint" and event.get("kind") == "best":
            self.run["best_path"] = event["path"]
        elif kind == "done":
            row["state"] = "interrupted" if event.get("interrupted") else "done"
        elif kind == "error":
            row["state"] = "failed"
            self.messages.append(f"rank {rank}: {event.get('message')}")
        self.live.update(self.render())
        if kind == "step" and rank == self.lead:
            self.plain_line()

    def plain_line(self) -> None:
        """Non-terminal output: one plain progress line, at most every line_interval seconds
        (the first step at once)."""
        now = self.clock()
        if not self.plain or (self.last_line is not None
                              and now - self.last_line < self.line_interval):
            return
        self.last_line = now
        self.console.print(time.strftime("%H:%M:%S ") + ", ".join(self.status(plain=True)),
                           markup=False, highlight=False, soft_wrap=True)

    def status(self, plain: bool = False) -> list[str]:
        """The run's status line, as phrases: the one under the live table, or (``plain``) the
        periodic line of non-terminal output, which has no table, so it carries the lead rank's
        loss and patches/s and says where the last validation was (not epoch or bicubic)."""
        r, row = self.run, self.ranks.get(self.lead, {})
        parts = []
        if plain or r.get("total"):
            parts.append(f"step {r.get('step', 0)}/{r.get('total', '?')}")
            if "epoch" in r and not plain:
                parts.append(f"epoch {r['epoch']}")
            if "loss" in row and plain:
                parts.append(f"loss {row['loss']:.4f}")
            if "lr" in r:
                parts.append(f"lr {r['lr']:.3g}")
            if "rate" in row and plain:
                parts.append(f"{row['rate']:.1f} patches/s")
            parts.append(f"eta {self._eta()}")
        if "psnr" in r and plain:
            parts.append(f"last val {r['psnr']:.2f} dB at step {r.get('val_step', '?')} "
                         f"(best {r['best']:.2f})")
        elif "psnr" in r:
            val = f"val PSNR {r['psnr']:.2f} dB (best {r['best']:.2f}"
            if r.get("bicubic") is not None:
                val += f", bicubic {r['bicubic']:.2f}"
            parts.append(val + f", {r.get('protocol', 'y')})")
        elif r.get("bicubic") is not None and not plain:
            parts.append(f"bicubic baseline {r['bicubic']:.2f} dB")
        return parts

    def _eta(self) -> str:
        r = self.run
        if not r.get("now") or r.get("step", 0) <= r.get("start_step", 0):
            return "-"
        # The recent pace (validation and checkpoints included once the window spans them);
        # until there are two progress events, the pace since the start.
        (t0, s0), (t1, s1) = (self.pace[0], self.pace[-1]) if len(self.pace) >= 2 else \
            ((r["started"], r["start_step"]), (r["now"], r["step"]))
        left = (t1 - t0) / max(s1 - s0, 1) * (r["total"] - r["step"])
        if left >= 86400:
            return f"{left / 3600:.0f} h"
        return time.strftime("%H:%M:%S", time.gmtime(left))

    def render(self):
        from rich.console import Group
        from rich.text import Text

        t = Table(title=self.title, title_justify="left")
        for name in ("rank", "state", "step", "loss", "patches/s", "data wait"):
            t.add_column(name, justify="left" if name in ("rank", "state") else "right")
        for rank in sorted(self.ranks):
            row = self.ranks[rank]
            t.add_row(str(rank), row.get("state", ""), str(row.get("step", "-")),
                      f"{row['loss']:.4f}" if "loss" in row else "-",
                      f"{row['rate']:.1f}" if "rate" in row else "-",
                      f"{100 * row['wait']:.0f}%" if "wait" in row else "-")
        lines = [t, Text("  ".join(self.status()))]
        lines += [Text(m, style="yellow") for m in self.messages]
        return Group(*lines)


# ------------------------------------------------------------------- prepare-data views


def inventory_table(inv) -> Table:
    """What prepare-data found: one row per split for HR and per (split, scale) for LR."""
    lr = "LR generated" if inv.degradation == "generated" else f"{inv.degradation} LR"
    return table(f"found: {inv.layout} layout, {lr}, in {inv.root}",
                 ["split", "files", "images", "given", "to make", "missing", "wrong size",
                  "bad"],
                 [(r["split"], r["kind"], r["images"], r["given"], r["generated"], r["missing"],
                   r["mismatched"], r["bad"]) for r in inv.summary_rows()])


class EventProgress:
    """A progress bar (count, images/s, ETA) fed by the engine's Event callbacks."""

    def __init__(self, description: str, unit: str = "images") -> None:
        self.description, self.unit = description, unit
        self.bar = progress(unit)
        self.task = None
        self.start = self.first = 0

    def __enter__(self) -> EventProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event) -> None:
        if event.kind in ("start", "verify-start"):
            self.start, self.first = time.perf_counter(), event.done
            self.task = self.bar.add_task(self.description, total=event.total,
                                          completed=event.done, rate="")
        elif event.kind == "warning":
            self.bar.console.print(f"[yellow]warning:[/] {_escape(event.message)}",
                                   soft_wrap=True)
        elif self.task is not None:
            if event.kind == "skip":
                self.bar.console.print(f"[yellow]warning:[/] skipped {_escape(event.name)}: "
                                       f"{_escape(event.message)}", soft_wrap=True)
            rate = rate_text(event.done - self.first,
                             time.perf_counter() - self.start, self.unit)
            self.bar.update(self.task, completed=event.done, total=event.total, rate=rate)


# ------------------------------------------------------------------- evaluate / upscale views


def _db(value: object) -> str:
    if value is None:
        return "-"
    v = float(value)  # type: ignore[arg-type]
    return "inf" if v == float("inf") else f"{v:.3f}"


def _ssim(value: object) -> str:
    return "-" if value is None else f"{float(value):.4f}"  # type: ignore[arg-type]


def eval_table(result: dict, checkpoint: str) -> Table:
    """Per-image PSNR/SSIM (and the bicubic baseline when present), then the mean row."""
    bicubic = "bicubic_psnr" in result["mean"]
    title = (f"x{result['scale']}, protocol {result['protocol']} (border {result['border']})"
             + (", self-ensemble x8" if result.get("self_ensemble") else "")
             + (f", LR degraded: {result['degrade']}" if result.get("degrade") else "")
             + f", checkpoint {checkpoint}"
             + (f", {engine_label(result['backend'], result.get('precision'))}"
                if result.get("backend") else ""))
    columns = ["image", "PSNR dB", "SSIM"] + (["bicubic PSNR", "bicubic SSIM"] if bicubic
                                              else []) + ["time s"]

    def cells(row: dict, name: str) -> list[str]:
        c = [name, _db(row["psnr"]), _ssim(row["ssim"])]
        if bicubic:
            c += [_db(row["bicubic_psnr"]), _ssim(row["bicubic_ssim"])]
        return c + [f"{row['seconds']:.2f}"]

    rows = [cells(r, _escape(r["name"])) for r in result["images"]]
    return table(_escape(title), columns, rows, footer=cells(result["mean"],
                                                     f"mean of {result['count']}"))


def failures_table(failures: list[dict]) -> Table:
    return table(f"{len(failures)} failed", ["input", "problem"],
                 [(_escape(f["input"]), _escape(f["error"])) for f in failures])


def engine_label(backend: str, precision: str | None) -> str:
    """The engine's name with its precision (once: OpenVINO's name already has it)."""
    return backend if not precision or precision in backend else f"{backend}, {precision}"


def upscale_table(images: list[dict], backend: str | None = None) -> Table:
    """One row per written image. Rows name files relative to the input and output folders
    the title gives, so an 80-column terminal shows whole names; the weights cell gives the
    kind and the input's form (the full reason is in --json)."""
    import os

    from .core.inference.weights import brief

    title = f"{len(images)} upscaled" + (f" with {backend}" if backend else "")
    inputs, outputs = [r["input"] for r in images], [r["output"] for r in images]
    try:
        folders = [os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
                   for paths in (inputs, outputs)]
    except ValueError:  # on different drives (Windows): whole paths
        folders = []
    if folders:
        inputs, outputs = ([os.path.relpath(os.path.abspath(p), f) for p in paths]
                           for paths, f in zip((inputs, outputs), folders, strict=True))
        title += f"\nfrom {folders[0]} into {folders[1]}"
    modes = any(r["mode"] != "RGB" for r in images)  # a column only when some image differs
    weights = any("weights" in r for r in images)  # bundled weights: which ran and why
    t = Table(title=_escape(title), title_justify="left")
    for name in ["input", "output", "size"] + ["mode"] * modes + ["weights"] * weights:
        t.add_column(name, overflow="fold")
    t.add_column("time s", justify="right", no_wrap=True)
    for r, source, target in zip(images, inputs, outputs, strict=True):
        (w, h), (ow, oh) = r["input_size"], r["output_size"]
        t.add_row(_escape(source), _escape(target), f"{w}x{h} -> {ow}x{oh}",
                  *([_escape(r["mode"])] if modes else []),
                  *([_escape(f"{r['weights']} ({brief(r['weights_why'])})")] if weights
                    else []), f"{r['seconds']:.2f}")
    return t


class ImageProgress:
    """A bar over images and, for images cut into several tiles, a second bar over tiles.

    Feed it from the engines' callbacks: ``start(index, total, name)``, ``tile(done, total)``,
    ``done(index, total)``.
    """

    def __init__(self, description: str, total: int | None, unit: str = "images") -> None:
        self.bar = progress(unit)
        self.unit = unit
        # no progress lines in logs and pipes, nor for nothing to do
        self.bar.disable = not err.is_terminal or total == 0
        self.description = description
        self.total = total
        self.images = None
        self.tiles = None
        self.t0 = 0.0

    def __enter__(self) -> ImageProgress:
        self.bar.__enter__()
        self.t0 = time.perf_counter()
        self.images = self.bar.add_task(self.description, total=self.total, rate="")
        return self

    def __exit__(self, *exc) -> None:
        if self.tiles is not None:
            self.bar.remove_task(self.tiles)
            self.tiles = None
        self.bar.__exit__(*exc)

    @property
    def live(self) -> bool:
        """True while the bar is drawn (a terminal, and something to do)."""
        return self.images is not None and not self.bar.disable

    def describe(self, text: str) -> None:
        """What the bar is doing, e.g. loading a model (it takes no second live display)."""
        if self.tiles is not None:  # the last image's tiles are done
            self.bar.remove_task(self.tiles)
            self.tiles = None
        self.bar.update(self.images, description=_escape(text))

    def start(self, index: int, total: int, name: str) -> None:
        if self.tiles is not None:
            self.bar.remove_task(self.tiles)
            self.tiles = None
        self.bar.update(self.images, description=f"{self.description} {_escape(name)}")

    def tile(self, done: int, total: int) -> None:
        if total <= 1:
            return
        if self.tiles is None:
            self.tiles = self.bar.add_task("  tiles", total=total, rate="")
        self.bar.update(self.tiles, completed=done, total=total)

    def done(self, index: int, total: int | None) -> None:
        rate = rate_text(index + 1, time.perf_counter() - self.t0, self.unit)
        if total is not None and total < index + 1:  # a video's frame count was an estimate
            total = None
        self.bar.update(self.images, completed=index + 1, rate=rate,
                        description=self.description,
                        **({"total": total} if total is not None else {}))


# ------------------------------------------------------------------------------ launches


class LaunchView(TrainView):
    """The TrainView of a launch: one row per rank started on this machine, the launcher's view
    of each process (starting, stopping, failed, ...), and the global batch.

    On a node without rank 0 (``--node-rank`` > 0) the overall progress follows this node's
    lowest rank, since rank 0's events stay on node 0.
    """

    _FINAL = ("done", "interrupted", "failed")

    def __init__(self, title: str, ranks: Sequence[int], batch_note: str = "",
                 console: Console | None = None, **plain) -> None:
        self.lead = min(ranks) if ranks else 0
        title = f"{title} ({batch_note})" if batch_note else title
        super().__init__(title, world_size=max(len(ranks), 1), console=console, **plain)
        self.ranks = {r: {"state": "starting"} for r in ranks}
        self.live.update(self.render())

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        if not self.console.is_terminal:
            self.console.line()  # Rich ends the last frame with a newline on terminals only

    def handle(self, event: dict) -> None:
        kind, rank = event.get("type"), int(event.get("rank", 0))
        if kind == "start" and rank != self.lead:
            # Only the lead rank knows the validation baseline; the others would erase it.
            self.ranks.setdefault(rank, {})["state"] = "training"
            self.live.update(self.render())
            return
        super().handle(event)

    def process_state(self, label: str, rank: int | None, state: str) -> None:
        """The launcher's callback: what happened to a process (not what it reported)."""
        if rank is None:  # the scheduler has no row
            if state == "failed":
                self.note(f"{label} failed")
            return
        row = self.ranks.setdefault(rank, {})
        current = row.get("state", "starting")
        if state == "exited" or (state == "starting" and current != "starting"):
            return  # the rank's own `done` event says more
        if state == "stopped" and current in self._FINAL:
            return
        row["state"] = state
        self.live.update(self.render())


def launch_failure(failure) -> None:
    """Which process failed and how, then the end of its log (a launcher ``Failure``)."""
    err.print(f"[bold red]error:[/] {_escape(failure.label)} {_escape(failure.reason)} "
              f"[dim]- its log: {_escape(failure.log_path)}[/]", soft_wrap=True)
    if failure.error:
        err.print(f"  {_escape(failure.label)} reported: {_escape(failure.error.get('message'))}",
                  soft_wrap=True)
    if failure.log_tail:
        err.print(f"[dim]last {len(failure.log_tail)} lines of {_escape(failure.log_path)}:[/]")
        for line in failure.log_tail:
            err.print(f"  [dim]|[/] {_escape(line)}", soft_wrap=True)


def launch_plan(summary: dict) -> None:
    """``wdsr train --dry-run``: one row per process (device, the variables that differ between
    processes, log), then what every process shares (environment, removed variables, command)."""
    procs = summary["processes"]
    keys = sorted({k for p in procs for k in p["env"]})
    common = {k: procs[0]["env"][k] for k in keys
              if all(p["env"].get(k) == procs[0]["env"].get(k) for p in procs)}
    unset_all = set.intersection(*(set(p["unset_env"]) for p in procs)) if procs else set()
    t = Table(title=f"launch plan: {summary['mode']}, world size {summary['world_size']}, "
                    f"global batch {summary['global_batch']}", title_justify="left")
    for name in ("process", "device", "environment of this process", "log"):
        t.add_column(name, overflow="fold")
    for p in procs:
        label = "scheduler" if p["role"] == "scheduler" else f"rank {p['rank']}"
        own = " ".join(_escape(f"{k}={v}") for k, v in p["env"].items() if k not in common)
        extra = sorted(set(p["unset_env"]) - unset_all)
        if extra:
            own += " [dim]removed: " + _escape(" ".join(extra)) + "[/]"
        t.add_row(label, "-" if p["device"] is None else str(p["device"]), own or "-",
                  _escape(p["log"]))
    out.print(t)
    shared = Table(show_header=False, box=None, padding=(0, 1))
    shared.add_column("what", style="bold")
    shared.add_column("value", overflow="fold")
    shared.add_row("every process", " ".join(_escape(f"{k}={v}") for k, v in common.items()))
    if unset_all:
        shared.add_row("removed", _escape(" ".join(sorted(unset_all))) + " (when inherited)")
    commands = {" ".join(p["argv"]) for p in procs}
    for command in sorted(commands):
        shared.add_row("command", _escape(command))
    out.print(shared)


# ------------------------------------------------------------------------- command views


def raw(text: str) -> None:
    """Text on stdout exactly as it is (e.g. a JSON file to save)."""
    import sys

    sys.stdout.write(text)


def console_for(json_out: str | None) -> Console:
    """Where tables go: stderr when the JSON summary takes stdout (``--json -``)."""
    return err if json_out == "-" else out


def load_predictor(weights, self_ensemble: bool):
    """The Predictor for resolved weights; a spinner while an ONNX form is made (once) or a
    reduced precision is loaded and checked."""
    from .core.inference.weights import load_predictor as load

    if weights.runs_onnx and weights.kind == "checkpoint" and weights.onnx_form is None:
        with err.status(f"making the ONNX form of {weights.path} (once)") as status:
            return load(weights, lambda text: status.update(text), self_ensemble=self_ensemble)
    if weights.precision != "fp32":
        with err.status(f"loading {weights.precision} on {weights.backend}") as status:
            return load(weights, lambda text: status.update(text), self_ensemble=self_ensemble)
    return load(weights, self_ensemble=self_ensemble)


def engine_line(weights, predictor) -> str:
    """Two lines: the engine that runs and its precision, each with why."""
    from .core.inference.engines import engine_facts

    facts = engine_facts(weights, predictor)
    check = facts["precision_check"]
    checked = "" if check is None or not check["passed"] else (
        f"; checked vs fp32: <= {check['uint8_max_diff']} levels, "
        f"{check['psnr_change_db']:+.4f} dB PSNR-Y")
    return (f"backend: {facts['backend']} ({weights.backend_why})\n"
            f"precision: {facts['precision']} ({facts['precision_why']}{checked})")


def upscale_notes(plan) -> None:
    """What the user should know before an upscale starts: notes, inputs left out."""
    for line in plan.notes:
        info(line)
    for left_out, source in plan.skipped:
        info(f"left out '{left_out}': it is the x{plan.scale} output of '{source}'")


def upscale_loader(plan, bar: ImageProgress):
    """``load(kind)`` for :func:`core.inference.upscale.run_upscale`: loads the plan's weights
    of that kind (when the first image needing them is read) and says what runs. While the
    bar is up, the bar says what is loading (no second live display under it)."""
    from .core.inference.weights import load_predictor as load

    def loader(kind):
        weights = plan.weights[kind]
        if bar.live:
            bar.describe(f"loading the {kind} weights" if kind else f"loading {weights.path.name}")
            predictor = load(weights, bar.describe, self_ensemble=plan.request.self_ensemble)
        else:
            predictor = load_predictor(weights, plan.request.self_ensemble)
        what = weights.why if kind is None else f"bundled {kind} weights"
        info(f"{weights.label} ({what}; x{plan.scale}, windows of "
             f"{'x'.join(map(str, predictor.window))} LR px"
             + (", self-ensemble x8" if plan.request.self_ensemble else "") + ")")
        info(engine_line(weights, predictor))
        return predictor

    return loader


def upscale_progress(plan) -> ImageProgress:
    """A bar over the plan's images, or over the frames of its video."""
    if plan.video is not None:
        return ImageProgress(f"upscaling {plan.todo[0].source.name}", plan.video.frames,
                             unit="frames")
    return ImageProgress("upscaling", len(plan.todo))


def show_upscale(summary, console: Console) -> None:
    """The table of written images, the failures, and the throughput line."""
    images = summary.images
    if images:
        console.print(upscale_table(images, engine_label(summary.engine.get("backend"),
                                                         summary.engine.get("precision"))))
    if summary.failures:
        console.print(failures_table(summary.failures))
    if summary.plan.video is not None:
        row = images[0]
        kept = ", ".join(row["copied"]) or "no other streams"
        info(f"{row['frames']} frames in {row['seconds']:.1f} s: "
             f"{row['frames_per_second']:.2f} frames/s; copied unchanged: {kept}")
        if row["left_out"]:
            warn("left out (not audio or subtitles): " + ", ".join(row["left_out"]))
    elif images:
        mp, seconds = summary.megapixels, summary.seconds
        info(f"{len(images)} image(s), {mp:.2f} output MP in {seconds:.1f} s: "
             f"{mp / seconds:.2f} MP/s, {len(images) / seconds:.2f} images/s")


def show_prepare_plan(job, console: Console) -> None:
    """What prepare-data found (the inventory table and its notes) and what is left to do."""
    console.print(inventory_table(job.inventory))
    for line in job.notes:
        console.print(f"note: {line}", markup=False, soft_wrap=True)
    plan = job.plan
    if plan.todo and len(plan.done):
        info(f"resuming: {len(plan.done)} of {len(plan.tasks)} images already done")


def run_prepare(job) -> dict:
    """Run a planned preparation with a progress bar (none when everything is done)."""
    plan = job.plan
    if plan.complete is not None:
        return job.run(lambda event: warn(event.message))
    try:
        with EventProgress("preparing") as on_event:
            return job.run(on_event)
    except KeyboardInterrupt:
        warn(f"interrupted: {len(plan.done)} of {len(plan.tasks)} images are done and kept; "
             "rerun the same command to continue")
        raise


def show_prepared(summary: dict, console: Console) -> None:
    patches = ", ".join(f"{k} {v}" for k, v in summary["patches"].items())
    if summary["status"] == "already-prepared":
        info(f"already prepared: {summary['out']} (dataset id {summary['dataset_id']}, "
             f"{summary['train_images']} train + {summary['valid_images']} valid images, "
             f"patches {patches}); nothing to do")
        return
    console.print(key_value_table("prepared", [
        ("output", str(summary["out"])), ("dataset id", summary["dataset_id"]),
        ("crop / step", f"{summary['crop_size']} / {summary['crop_step']}"),
        ("train images", str(summary["train_images"])),
        ("valid images", str(summary["valid_images"])),
        ("sub-images per scale", patches),
        ("skipped", str(len(summary["skipped"]))),
        ("time", f"{summary['seconds']:.1f} s ({summary['images_per_s']:.1f} images/s)")]))


def verify_prepared(job, console: Console) -> dict:
    """--verify with a progress bar; the mismatches as a table."""
    with EventProgress("verifying", "files") as on_event:
        report = job.verify(on_event)
    if report["mismatches"]:
        console.print(table("verify: mismatches", ["file", "problem"],
                            [(m["file"], m["problem"]) for m in report["mismatches"]]))
    return report


def show_evaluation(plan, result: dict, console: Console) -> None:
    console.print(eval_table(result, str(plan.weights.path)))
    if plan.save_images is not None:
        info(f"saved {result['count']} images in {plan.save_images}")


def say_evaluation(plan, predictor) -> None:
    """The lines above the evaluate table: weights (and why), engine, data."""
    for warning in plan.warnings:
        warn(warning)
    w = plan.weights
    step = "?" if w.step is None else w.step
    chose = f"{w.bundled} weights: {plan.kind_why}; " if w.bundled else ""
    info(f"{w.label} ({chose}{w.why}; step {step})")
    info(engine_line(w, predictor))
    info(f"data: {plan.dataset.description}")


def parity_table(parity: dict) -> Table:
    rows = [("{}x{}".format(*r["lr_size"]),
             "non-finite" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.2e}",
             f"{r['uint8_differ']:,} of {r['uint8_values']:,}",
             f"{100 * r['uint8_differ_share']:.4f}%", "yes" if r["passed"] else "NO")
            for r in parity["images"]]
    return table(f"parity vs checkpoint: {parity['runtime']} (tolerance max |diff| <= "
                 f"{parity['tolerance_max_abs_diff']} on 0..255)",
                 ["LR size (HxW)", "max |diff|", "8-bit values differing", "share", "ok"], rows)


def show_export(result: dict, console: Console) -> None:
    console.print(key_value_table("exported", [
        ("file", result["output"]), ("contract", result["contract"]),
        ("format", result["format"].upper()),
        ("input", "N x 3 x H x W, any size" if result["dynamic_shape"] else
         "1 x 3 x {} x {} (fixed; larger images run in windows)".format(*result["input_size"])),
        ("scale", f"x{result['scale']}"),
        ("size", f"{result['bytes'] / 1e6:.2f} MB"),
        ("time", f"{result['seconds']:.1f} s")]))
    parity = result["parity"]
    if parity["checked"]:
        console.print(parity_table(parity))
    else:
        warn(f"parity check skipped: {parity['reason']}")


def print_config(cfg) -> None:
    """``train --print-config``: the resolved recipe as YAML and the model summary."""
    from .core.config import dump_yaml
    from .core.model_info import summarize

    out.print(dump_yaml(cfg), end="", markup=False)
    out.print(key_value_table("model", summarize(cfg.model).rows()))


def show_dry_run(summary: dict, batch_note: str) -> None:
    for line in summary["description"]:
        info(line)
    for warning in summary["warnings"]:
        warn(warning)
    launch_plan(summary)
    info(batch_note + "; nothing was started (--dry-run)")


def run_training(job):
    """Start a planned training and show all ranks in one live table; the outcome."""
    for warning in job.warnings:
        warn(warning)
    for line in (job.plan.description if job.plan.mode != "single" else []) + job.notes:
        info(line)
    run_dir = job.prepare_folder()  # an unwritable --runs-dir stops here, before the table
    with LaunchView(f"wdsr train {job.cfg.name}: {run_dir}",
                    [p.rank for p in job.plan.workers], job.batch_note) as view:
        outcome = job.run(view.handle, on_status=view.process_state, on_note=view.note)
    if outcome.error is not None:
        raise outcome.error
    if outcome.failure is not None:
        launch_failure(outcome.failure)
    for line in outcome.messages:
        info(line)
    return outcome

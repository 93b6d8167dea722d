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
        r, row = self.run, self.ranks.get(self.lead, {})
        parts = [f"step {r.get('step', 0)}/{r.get('total', '?')}"]
        if "loss" in row:
            parts.append(f"loss {row['loss']:.4f}")
        if "lr" in r:
            parts.append(f"lr {r['lr']:.3g}")
        if "rate" in row:
            parts.append(f"{row['rate']:.1f} patches/s")
        parts.append(f"eta {self._eta()}")
        if "psnr" in r:
            parts.append(f"last val {r['psnr']:.2f} dB at step {r.get('val_step', '?')} "
                         f"(best {r['best']:.2f})")
        self.console.print(time.strftime("%H:%M:%S ") + ", ".join(parts), markup=False,
                           highlight=False, soft_wrap=True)

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
        r = self.run
        parts = []
        if r.get("total"):
            parts.append(f"step {r.get('step', 0)}/{r['total']}")
            if "epoch" in r:
                parts.append(f"epoch {r['epoch']}")
            if "lr" in r:
                parts.append(f"lr {r['lr']:.3g}")
            parts.append(f"eta {self._eta()}")
        if "psnr" in r:
            val = f"val PSNR {r['psnr']:.2f} dB (best {r['best']:.2f}"
            if r.get("bicubic") is not None:
                val += f", bicubic {r['bicubic']:.2f}"
            parts.append(val + f", {r.get('protocol', 'y')})")
        elif r.get("bicubic") is not None:
            parts.append(f"bicubic baseline {r['bicubic']:.2f} dB")
        lines = [t, Text("  ".join(parts))]
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
    title = f"{len(images)} upscaled" + (f" with {backend}" if backend else "")
    weights = any("weights" in r for r in images)  # bundled weights: which ran and why
    return table(_escape(title), ["input", "output", "size", "mode"]
                 + (["weights"] if weights else []) + ["time s"],
                 [(_escape(r["input"]), _escape(r["output"]),
                   f"{r['input_size'][0]}x{r['input_size'][1]} -> "
                   f"{r['output_size'][0]}x{r['output_size'][1]}", r["mode"],
                   *([_escape(f"{r['weights']} ({r['weights_why'].removeprefix('auto: ')})")]
                     if weights else []),
                   f"{r['seconds']:.2f}") for r in images])


class ImageProgress:
    """A bar over images and, for images cut into several tiles, a second bar over tiles.

    Feed it from the engines' callbacks: ``start(index, total, name)``, ``tile(done, total)``,
    ``done(index, total)``.
    """

    def __init__(self, description: str, total: int) -> None:
        self.bar = progress("images")
        self.bar.disable = not err.is_terminal  # no progress lines in logs and pipes
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

    def done(self, index: int, total: int) -> None:
        rate = rate_text(index + 1, time.perf_counter() - self.t0, "images")
        self.bar.update(self.images, completed=index + 1, rate=rate,
                        description=self.description)


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

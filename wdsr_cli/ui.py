"""The one place that draws: Rich console, tables, progress bars and error lines.

Tables and results go to stdout; progress and messages go to stderr so that
``wdsr evaluate --json - > out.json`` style piping stays clean.
"""

from __future__ import annotations

import time
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


class TrainView:
    """One live table for a training run, fed with events (from one rank or many).

    Rows: one per rank (state, step, loss, patches/s, data wait), then the run's overall
    progress (step/total, epoch, lr, ETA) and validation (last and best PSNR vs bicubic).
    """

    def __init__(self, title: str, world_size: int = 1, console: Console | None = None) -> None:
        from rich.live import Live

        self.title = title
        self.world_size = world_size
        self.ranks: dict[int, dict] = {r: {"state": "starting"} for r in range(world_size)}
        self.run: dict = {}
        self.messages: list[str] = []
        self.console = console or err
        self.live = Live(self.render(), console=self.console, refresh_per_second=4,
                         transient=False)

    def __enter__(self) -> TrainView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.update(self.render())
        self.live.__exit__(*exc)

    def set_state(self, rank: int, state: str) -> None:
        self.ranks.setdefault(rank, {})["state"] = state
        self.live.update(self.render())

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
            if rank == 0:
                self.run.update(step=event["step"], epoch=event["epoch"], lr=event["lr"],
                                now=event["time"], total=event.get("total_steps",
                                                                   self.run.get("total")))
        elif kind == "validation":
            self.run.update(psnr=event["psnr"], ssim=event["ssim"], best=event["best_psnr"],
                            bicubic=event.get("bicubic_psnr"), protocol=event.get("protocol"))
        elif kind == "checkpoint" and event.get("kind") == "best":
            self.run["best_path"] = event["path"]
        elif kind == "done":
            row["state"] = "interrupted" if event.get("interrupted") else "done"
        elif kind == "error":
            row["state"] = "failed"
            self.messages.append(f"rank {rank}: {event.get('message')}")
        self.live.update(self.render())

    def _eta(self) -> str:
        r = self.run
        if not r.get("now") or r.get("step", 0) <= r.get("start_step", 0):
            return "-"
        done = r["step"] - r["start_step"]
        per_step = (r["now"] - r["started"]) / done
        left = per_step * (r["total"] - r["step"])
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

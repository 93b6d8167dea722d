"""The one place that draws: Rich console, tables, progress bars and error lines.

Tables and results go to stdout; progress and messages go to stderr so that
``wdsr evaluate --json - > out.json`` style piping stays clean.
"""

from __future__ import annotations

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

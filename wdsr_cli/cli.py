"""The `wdsr` command line: parse, load config, call the core, render. No ML logic here.

MindSpore is imported lazily inside the commands that need it, so `wdsr --help`, `--version`
and argument errors stay instant (importing it costs ~1.3 s and ~400 MB).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

try:  # newer typer vendors click as typer._click; older typer depends on click itself
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import UsageError

from . import __version__
from .core.errors import WdsrError

app = typer.Typer(
    name="wdsr",
    help="Train, evaluate, export and run WDSR super-resolution (Yu et al., 2018) on MindSpore.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_STATE = {"debug": False}

ConfigOpt = typer.Option(
    None, "--config", "-c", help="Recipe name (see configs/) or path to a YAML file."
)
SetOpt = typer.Option(
    None, "--set", help="Override one config value, e.g. --set train.lr=1e-3 (repeatable)."
)
DeviceOpt = typer.Option(
    None, "--device-target", help="auto (Ascend, then GPU, then CPU), CPU, GPU or Ascend."
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wdsr {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    _STATE["debug"] = debug


def _load_config(config: str | None, overrides: list[str] | None, device_target: str | None):
    from .core.config import load_config

    sets = list(overrides or [])
    if device_target is not None:
        sets.append(f"runtime.device_target={device_target}")
    return load_config(config, sets)


def _not_built(what: str) -> None:
    raise WdsrError(f"'wdsr {what}' is not available in this version yet",
                    "see README.md for what works today")


# ------------------------------------------------------------------------------ commands


@app.command("prepare-data")
def prepare_data(
    root_dir: Path | None = typer.Argument(None, metavar="[DIV2K_ROOT]",
                                           help="DIV2K tree or folder of HR images."),
    config: str | None = ConfigOpt,
    overrides: list[str] | None = SetOpt,
) -> None:
    """Crop DIV2K (or any HR folder) into aligned HR/LR training patches.

    Example: wdsr prepare-data ~/datasets/DIV2K --scales 2,3,4
    """
    _load_config(config, overrides, None)
    _not_built("prepare-data")


@app.command()
def train(
    config: str | None = ConfigOpt,
    overrides: list[str] | None = SetOpt,
    device_target: str | None = DeviceOpt,
    print_config: bool = typer.Option(
        False, "--print-config", help="Show the resolved config and model summary, then exit."),
) -> None:
    """Train WDSR on one or more devices.

    Example: wdsr train --config wdsr-b-x2 --set train.lr=5e-4
    """
    cfg = _load_config(config, overrides, device_target)
    if print_config:
        from . import ui
        from .core.config import dump_yaml
        from .core.model_info import summarize

        ui.out.print(dump_yaml(cfg), end="", markup=False)
        ui.out.print(ui.key_value_table("model", summarize(cfg.model).rows()))
        return
    _not_built("train")


@app.command()
def evaluate(
    scale: int = typer.Option(2, "--scale", "-s", help="Upscaling factor: 2, 3 or 4."),
    config: str | None = ConfigOpt,
    overrides: list[str] | None = SetOpt,
) -> None:
    """Report PSNR/SSIM on DIV2K validation or any image folder.

    Example: wdsr evaluate --scale 2 --hr photos/ --bicubic
    """
    _load_config(config, overrides, None)
    _not_built("evaluate")


@app.command()
def export(
    fmt: str = typer.Option("mindir", "--format", "-f", help="mindir, air or onnx."),
) -> None:
    """Write a deployable MINDIR / AIR / ONNX model, checked against its checkpoint.

    Example: wdsr export --checkpoint runs/x2/best.ckpt --format onnx
    """
    _not_built("export")


@app.command()
def upscale(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT...", help="Image files, folders or globs."),
    scale: int = typer.Option(2, "--scale", "-s", help="Upscaling factor: 2, 3 or 4."),
) -> None:
    """Super-resolve images (works out of the box with the bundled weights).

    Example: wdsr upscale photo.png --scale 4 -o photo_x4.png
    """
    _not_built("upscale")


# ---------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every expected failure becomes one line on stderr and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="wdsr", standalone_mode=False)
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            code = 0  # `wdsr` alone: typer has already printed the help
        else:
            from . import ui

            where = f"{exc.ctx.command_path} --help" if exc.ctx else "wdsr --help"
            ui.error(exc.format_message(), f"see '{where}'")
            code = 2
    except WdsrError as exc:
        from . import ui

        if debug:
            raise
        ui.error(exc.message, exc.hint)
        code = 2
    except (KeyboardInterrupt, typer.Abort):
        from . import ui

        ui.error("interrupted")
        code = 130
    except typer.Exit as exc:
        code = exc.exit_code
    except Exception as exc:  # a bug: say so plainly, full detail with --debug
        if debug:
            raise
        from . import ui

        ui.error(f"internal error: {type(exc).__name__}: {exc}",
                 "rerun with --debug for the traceback and report it")
        code = 1
    sys.exit(code or 0)

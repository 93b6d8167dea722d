"""The `wdsr` command line: each command parses its options, makes one core call that checks
everything and returns a plan or summary, and hands it to `ui` to draw. No ML logic, no
policies here (options and their help live in options.py).

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
from . import options as O
from .core.errors import WdsrError

app = typer.Typer(
    name="wdsr",
    help="Train, evaluate, export and run WDSR super-resolution (Yu et al., 2018) on MindSpore.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings reflow into paragraphs at any terminal width
    context_settings={"help_option_names": ["-h", "--help"]},
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
    # --debug is read by main() from the raw arguments, so parsing errors honour it too.
    return


def _load_config(config: str | None, overrides: list[str] | None, device_target: str | None,
                 data: tuple[str, Path | None] | None = None):
    """The recipe with --set overrides; --device-target and --data are overrides too."""
    from .core.config import load_config

    sets = list(overrides or [])
    if device_target is not None:
        sets.append(f"runtime.device_target={device_target}")
    if data is not None and data[1] is not None:
        sets.append(f"{data[0]}={data[1]}")
    return load_config(config, sets)


def _inference_start(scale: int | None, tile: int | None = None) -> None:
    """First thing in evaluate/upscale/export, before numpy or MindSpore start threads: Ctrl-C
    stays with Python (runtime.ctrl_c_stays_with_python: MindSpore's own handler exits with
    143); then the scale. --tile / eval.tile are accepted so old scripts and configs still
    run; they change nothing any more (a setting that picked other windows could change the
    output)."""
    from . import ui
    from .core import runtime
    from .core.config import check_scale, obsolete_tile_note

    runtime.ctrl_c_stays_with_python()
    if scale is not None:
        check_scale(scale)
    if tile is not None:
        ui.warn(obsolete_tile_note("--tile"))


def _write_json(json_out: str | None, data: dict, command: str) -> None:
    if json_out is not None:
        from .core import jsonout

        jsonout.write(json_out, data, command)


# ------------------------------------------------------------------------------ commands


@app.command("prepare-data")
def prepare_data(
    root_dir: Path | None = O.PrepRoot, out: Path | None = O.PrepOut,
    scales: str = O.PrepScales, crop_size: int | None = O.PrepCropSize,
    crop_step: int | None = O.PrepCropStep, workers: int | None = O.PrepWorkers,
    make_lr: bool | None = O.PrepMakeLr, degradation: str = O.PrepDegradation,
    valid_count: int = O.PrepValidCount, skip_bad: bool = O.PrepSkipBad,
    verify: bool = O.PrepVerify, force: bool = O.PrepForce, sample: Path | None = O.PrepSample,
    json_out: str | None = O.Json, config: str | None = O.Config,
    overrides: list[str] | None = O.Set,
) -> None:
    """Crop DIV2K (or any HR folder) into aligned HR/LR training patches.

    Finds the data (official DIV2K, the model-zoo layout, or a plain folder), shows what it
    found, then writes memory-mappable .npy shards and a manifest. Interrupted runs resume;
    a finished run rerun does nothing.

    Example: wdsr prepare-data ~/datasets/DIV2K --scales 2,3,4

    Example: wdsr prepare-data --sample data/sample
    """
    from . import ui
    from .core.data import prepare as P

    job = P.plan_prepare(P.PrepareRequest(
        root_dir, out, scales, crop_size, crop_step, workers, make_lr, degradation, valid_count,
        skip_bad, verify, force, sample, json_out, list(overrides or [])),
        _load_config(config, overrides, None))
    console = ui.console_for(json_out)
    summary = {"status": "verify-only", "out": str(job.opts.out)}
    if job.plan is not None:
        ui.show_prepare_plan(job, console)
        summary = ui.run_prepare(job)
        ui.show_prepared(summary, console)
    if verify:
        summary["verify"] = ui.verify_prepared(job, console)
    _write_json(json_out, summary, "prepare-data")
    if verify:
        ui.info(job.verified(summary["verify"]))


@app.command(epilog="Several devices: wdsr train -c wdsr-b-x2 --devices 8 --rank-table "
             "hccl_8p.json (Ascend); wdsr train -c demo --devices 2 --device-target CPU "
             "(dynamic cluster); wdsr train -c wdsr-b-x2 --devices 8 --nodes 2 --node-rank 0 "
             "--master 10.0.0.1:8118 (node 0 of two). Add --dry-run to see the plan.")
def train(
    config: str | None = O.Config, overrides: list[str] | None = O.Set,
    device_target: str | None = O.DeviceTarget, data: Path | None = O.TrainData,
    steps: int | None = O.TrainSteps, resume: str | None = O.TrainResume,
    init: Path | None = O.TrainInit, name: str | None = O.TrainName,
    runs_dir: Path = O.TrainRunsDir, allow_data_change: bool = O.TrainAllowDataChange,
    print_config: bool = O.TrainPrintConfig, devices: int | None = O.TrainDevices,
    rank_table: Path | None = O.TrainRankTable, server_id: str | None = O.TrainServerId,
    nodes: int = O.TrainNodes, node_rank: int = O.TrainNodeRank,
    master: str | None = O.TrainMaster, dry_run: bool = O.TrainDryRun,
    json_out: str | None = O.TrainJson, stall_timeout: float = O.TrainStallTimeout,
    device_id: int | None = O.TrainDeviceId, rank_table_example: bool = O.TrainRankTableExample,
) -> None:
    """Train WDSR on one or more devices; writes runs/NAME/ (checkpoints, log, metrics, plot).

    data.batch_size is per device: the global batch is batch_size x devices x nodes (the
    recipes' 16 on --devices 8 trains with 128 patches per step). Every rank starts from the
    same seed and averages its gradients with the others; rank 0 validates and writes the run
    folder; each rank logs to runs/NAME/logs/rank_N.log (machines without rank 0: to
    runs/NAME-nodeK/logs/).

    Example: wdsr train --config demo --data data/sample/prepared --set train.lr=5e-4
    """
    from . import ui
    from .core.launch import session as L
    from .core.launch.ranktable import example_table_text

    if rank_table_example:
        return ui.raw(example_table_text())
    request = L.TrainRequest.from_flags(locals())
    if print_config:
        return ui.print_config(L.load_config(request)[0])
    job = L.plan_train(request)  # every check; nothing is created yet
    if dry_run and json_out is not None:
        return _write_json(json_out, job.summary(), "train --dry-run")
    if dry_run:
        return ui.show_dry_run(job.summary(), job.batch_note)
    outcome = ui.run_training(job)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command()
def evaluate(
    scale: int | None = O.Scale, checkpoint: Path | None = O.EvalCheckpoint,
    model: Path | None = O.Model, weights_choice: str = O.EvalWeights,
    backend: str = O.Backend, precision: str = O.EvalPrecision, data: Path | None = O.EvalData,
    hr: Path | None = O.EvalHr, lr: Path | None = O.EvalLr, protocol: str | None = O.EvalProtocol,
    self_ensemble: bool | None = O.EvalSelfEnsemble, tile: int | None = O.Tile,
    bicubic: bool = O.EvalBicubic, degrade: str | None = O.EvalDegrade,
    save_images: Path | None = O.EvalSaveImages, json_out: str | None = O.Json,
    report: Path | None = O.EvalReport, overwrite: bool = O.EvalOverwrite,
    limit: int = O.EvalLimit, runs_dir: Path = O.RunsDir, config: str | None = O.Config,
    overrides: list[str] | None = O.Set, device_target: str | None = O.DeviceTarget,
) -> None:
    """Report PSNR/SSIM on DIV2K validation or any image folder.

    Example: wdsr evaluate --scale 2 --hr photos/ --bicubic --json scores.json

    Example: wdsr evaluate --checkpoint bundled --hr photos/ --report report/
    """
    _inference_start(scale, tile)
    cfg = _load_config(config, overrides, device_target, ("data.root", data))
    from . import ui
    from .core import evaluate as E

    plan = E.plan_evaluate(E.EvalRequest(
        scale, checkpoint, model, weights_choice, backend, precision, hr, lr, protocol,
        self_ensemble, bicubic, degrade, save_images, json_out, report, overwrite, limit,
        runs_dir, config), cfg)
    predictor = ui.load_predictor(plan.weights, plan.self_ensemble)
    ui.say_evaluation(plan, predictor)
    with ui.ImageProgress("evaluating", len(plan.dataset)) as bar:
        result = E.run_evaluate(plan, predictor, lambda done, total, row: bar.done(
            done - 1, total or done))
    ui.show_evaluation(plan, result, ui.console_for(json_out))
    _write_json(json_out, E.result_to_json(result), "evaluate")
    if report is not None:
        ui.info(f"report: {E.write_report(plan, predictor, result)}")


@app.command()
def export(
    fmt: str = O.ExportFormat, checkpoint: Path | None = O.ExportCheckpoint,
    scale: int | None = O.ExportScale, output: Path | None = O.ExportOutput,
    input_size: str | None = O.ExportInputSize, force: bool = O.ExportForce,
    no_check: bool = O.ExportNoCheck, json_out: str | None = O.Json,
    runs_dir: Path = O.RunsDir, device_target: str | None = O.DeviceTarget,
) -> None:
    """Write a deployable MINDIR / ONNX / AIR model, checked against its checkpoint.

    Weight norm is folded into plain convolutions. MINDIR and ONNX take any input size unless
    --input-size fixes one. The file is then run on a real photo at two sizes (MINDIR with
    MindSpore, ONNX with ONNX Runtime) and compared with the checkpoint; it is written only if
    the largest difference is within tolerance. OUTPUT.json next to it records the I/O
    contract; run it with wdsr upscale/evaluate --model.

    Example: wdsr export --checkpoint runs/wdsr-b-x2/best.ckpt --format onnx
    """
    _inference_start(None)
    from . import ui
    from .core.inference import export as X
    from .core.inference.weights import start_mindspore

    runtime_cfg = _load_config(None, None, device_target).runtime
    weights, plan = X.plan_export_request(X.ExportRequest(
        fmt, checkpoint, scale, output, input_size, force, json_out, runs_dir), runtime_cfg)
    start_mindspore(runtime_cfg.device_target, runtime_cfg.device_id)
    ui.info(f"checkpoint: {plan.checkpoint} ({weights.why})")
    console = ui.console_for(json_out)
    try:
        with ui.err.status(f"exporting {plan.fmt.upper()}") as status:
            result = X.export_model(plan.checkpoint, plan.fmt, output, plan.input_size, force,
                                    check=not no_check, device_target=runtime_cfg.device_target,
                                    on_stage=status.update)
    except X.ParityError as exc:
        console.print(ui.parity_table(exc.result["parity"]))
        raise
    ui.show_export(result, console)
    _write_json(json_out, result, "export")


@app.command()
def upscale(
    inputs: list[str] = O.UpInputs, output: str | None = O.UpOutput,
    scale: int | None = O.Scale, outscale: str | None = O.UpOutscale,
    checkpoint: Path | None = O.UpCheckpoint, model: Path | None = O.Model,
    weights_choice: str = O.UpWeights, backend: str = O.Backend,
    precision: str = O.UpPrecision, tile: int | None = O.Tile,
    self_ensemble: bool = O.UpSelfEnsemble, overwrite: bool = O.UpOverwrite,
    strip_metadata: bool = O.UpStripMetadata, crf: int | None = O.UpCrf,
    codec: str | None = O.UpCodec,
    json_out: str | None = O.Json, device_target: str | None = O.DeviceTarget,
) -> None:
    """Super-resolve images or a video (works out of the box with the bundled weights).

    Example: wdsr upscale photo.png --scale 4 -o photo_x4.png

    Example: wdsr upscale clip.mp4 --outscale 1.5   (720p -> 1080p; audio copied)
    """
    _inference_start(scale, tile)
    from . import ui
    from .core.inference import upscale as U

    plan = U.plan_upscale(U.UpscaleRequest(
        inputs, output, scale, checkpoint, model, weights_choice, backend, precision,
        self_ensemble, overwrite, json_out, outscale, crf, codec, strip_metadata),
        _load_config(None, None, device_target).runtime)
    ui.upscale_notes(plan)
    with ui.upscale_progress(plan) as bar:  # each model loads when its first image is read
        summary = U.run_upscale(plan, ui.upscale_loader(plan, bar), bar.start, bar.tile,
                                bar.done)
    ui.show_upscale(summary, ui.console_for(json_out))
    _write_json(json_out, summary.to_json(), "upscale")
    summary.check()


# ---------------------------------------------------------------------------- entry point


_LATEST = "latest"  # = core.launch.session.LATEST (kept here so --help needs no core import)


def _optional_values(args: list[str]) -> list[str]:
    """`--resume` may stand alone (= the latest run) and `--json` too (= stdout): give them
    their implicit values."""
    implicit = {"--resume": _LATEST, "--json": "-"}
    out = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg in implicit and (i + 1 == len(args)
                                or args[i + 1].startswith("-") and args[i + 1] != "-"):
            out.append(implicit[arg])
    return out


def _exit_code(exc: BaseException, debug: bool) -> int:
    """An exception out of a command as the user sees it: one line on stderr and the exit
    code (2 for expected failures, 130/143/129 stopped, 1 a bug); --debug re-raises."""
    from . import ui

    if isinstance(exc, UsageError):
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            return 0  # `wdsr` alone: typer has already printed the help
        where = f"{exc.ctx.command_path} --help" if exc.ctx else "wdsr --help"
        ui.error(exc.format_message(), f"see '{where}'")
        return 2
    if isinstance(exc, typer.Exit):
        return _stopped() if exc.exit_code == 130 else exc.exit_code
    if debug and not isinstance(exc, (KeyboardInterrupt, typer.Abort)):
        raise exc
    if isinstance(exc, WdsrError):
        ui.error(exc.message, exc.hint)
        return getattr(exc, "exit_code", 2)
    if isinstance(exc, (KeyboardInterrupt, typer.Abort)):
        return _stopped()
    ui.error(f"internal error: {type(exc).__name__}: {exc}",  # a bug: say so plainly
             "rerun with --debug for the traceback and report it")
    return 1


def _stopped() -> int:
    """Say how the command was stopped (Ctrl-C, SIGTERM, SIGHUP); its exit code."""
    from . import ui
    from .core.runtime import interruption

    message, code = interruption()
    ui.error(message)
    return code


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every expected failure becomes one line on stderr and exit code 2."""
    from .core.runtime import stop_on_signals

    args = _optional_values(list(sys.argv[1:] if argv is None else argv))
    command = typer.main.get_command(app)
    stop_on_signals()  # SIGTERM and SIGHUP stop a command as Ctrl-C does (exit 143, 129)
    try:
        code = command.main(args=args, prog_name="wdsr", standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C inside a command into 130 without a word
            code = _stopped()
    except (Exception, KeyboardInterrupt) as exc:
        code = _exit_code(exc, "--debug" in args)
    sys.exit(code or 0)

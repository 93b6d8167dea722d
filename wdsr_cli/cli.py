"""The `wdsr` command line: parse, load config, call the core, render. No ML logic here.

MindSpore is imported lazily inside the commands that need it, so `wdsr --help`, `--version`
and argument errors stay instant (importing it costs ~1.3 s and ~400 MB).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

try:  # newer typer vendors click as typer._click; older typer depends on click itself
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import UsageError

from . import __version__
from .core.errors import Interrupted, WdsrError

app = typer.Typer(
    name="wdsr",
    help="Train, evaluate, export and run WDSR super-resolution (Yu et al., 2018) on MindSpore.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings reflow into paragraphs at any terminal width
    context_settings={"help_option_names": ["-h", "--help"]},
)

ConfigOpt = typer.Option(
    None, "--config", "-c", help="Recipe name (see configs/) or path to a YAML file."
)
SetOpt = typer.Option(
    None, "--set", help="Override one config value, e.g. --set train.lr=1e-3 (repeatable)."
)
DeviceOpt = typer.Option(
    None, "--device-target", help="auto (Ascend, then GPU, then CPU), CPU, GPU or Ascend."
)
# evaluate and upscale
ScaleOpt = typer.Option(
    None, "--scale", "-s", help="Upscaling factor 2, 3, 4 or 8 (default: the checkpoint's, "
    "else 2)."
)
ModelOpt = typer.Option(
    None, "--model", help="Use an exported .mindir/.onnx (wdsr export) instead of a checkpoint."
)
JsonOpt = typer.Option(
    None, "--json", metavar="FILE", help="Write a machine-readable summary as JSON to FILE "
    "('-' or --json alone = stdout; the tables then go to stderr)."
)
WeightsOpt = typer.Option(
    "auto", "--weights", help="Which bundled weights: auto (photo weights for JPEG inputs, "
    "clean ones for lossless), clean (trained on bicubic LR) or photo (trained on JPEG, noise "
    "and blur).")
BackendOpt = typer.Option(
    "auto", "--backend", help="auto (on a CPU the engine measured fastest there: OpenVINO or "
    "ONNX Runtime; else MindSpore), mindspore, onnxruntime or openvino (these two run the "
    "checkpoint's ONNX form, made and checked once)."
)


def _precision_opt(default: str, why: str):
    return typer.Option(
        default, "--precision", help="auto (bf16 on OpenVINO where the CPU has native bf16 "
        "and it was measured faster, else fp32), fp32 or bf16 (checked once against fp32: "
        f"8-bit values within 2 levels, PSNR within 0.01 dB, else refused). {why}")


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


def _load_config(config: str | None, overrides: list[str] | None, device_target: str | None):
    from .core.config import load_config

    sets = list(overrides or [])
    if device_target is not None:
        sets.append(f"runtime.device_target={device_target}")
    return load_config(config, sets)


def _check_scale(scale: int | None) -> None:
    from .core.config import SCALES

    if scale is not None and scale not in SCALES:
        raise WdsrError(f"unsupported scale {scale}",
                        "choose one of " + ", ".join(map(str, SCALES)))


def _obsolete_tile(tile: int | None, where: str = "--tile") -> None:
    """--tile / eval.tile are accepted so old scripts and configs still run; they no longer
    change anything (a setting that picked other windows could change the output)."""
    if tile is not None:
        from . import ui

        ui.warn(f"{where} has no effect any more: every image runs in the same fixed windows "
                "(output independent of any setting, memory bounded); drop it")


TileOpt = typer.Option(None, "--tile", hidden=True,
                       help="Obsolete, no effect: images always run in fixed windows.")


def _ctrl_c_stays_with_python() -> None:
    """First thing in evaluate/upscale/export, before numpy or MindSpore start threads: see
    runtime.ctrl_c_stays_with_python (MindSpore's own SIGINT handler exits with 143)."""
    from .core import runtime

    runtime.ctrl_c_stays_with_python()


def _load_weights(weights, self_ensemble: bool):
    """The Predictor for resolved weights; making a checkpoint's ONNX form (once) shows a
    spinner."""
    from . import ui
    from .core.inference.weights import load_predictor

    if weights.runs_onnx and weights.kind == "checkpoint" and weights.onnx_form is None:
        with ui.err.status(f"making the ONNX form of {weights.path} (once)") as status:
            return load_predictor(weights, lambda text: status.update(text),
                                  self_ensemble=self_ensemble)
    if weights.precision != "fp32":
        with ui.err.status(f"loading {weights.precision} on {weights.backend}") as status:
            return load_predictor(weights, lambda text: status.update(text),
                                  self_ensemble=self_ensemble)
    return load_predictor(weights, self_ensemble=self_ensemble)


def _bundled_choice(choice: str, checkpoint, model) -> bool:
    """Does ``--weights`` choose among the bundled weights (no --model, no checkpoint file)?"""
    from .core.inference.weights import check_weights_choice

    check_weights_choice(choice)
    bundled = model is None and checkpoint in (None, Path("bundled"))
    if choice != "auto" and not bundled:
        raise WdsrError(f"--weights {choice} chooses among the bundled weights, so it does not "
                        "go with --checkpoint FILE or --model", "drop --weights (or the file)")
    return bundled


def _engine_facts(weights, predictor) -> dict:
    """What ran and why, for --json and the lines above the table."""
    check = predictor.precision_check
    return {"backend": predictor.backend.name, "engine": weights.backend,
            "backend_why": weights.backend_why, "precision": predictor.precision,
            "precision_why": predictor.precision_why or weights.precision_why,
            "precision_check": None if check is None else {
                k: check[k] for k in ("passed", "uint8_max_diff", "psnr_change_db",
                                      "tolerance", "from_cache")}}


def _engine_line(weights, predictor) -> str:
    facts = _engine_facts(weights, predictor)
    check = facts["precision_check"]
    checked = "" if check is None or not check["passed"] else (
        f"; checked vs fp32: <= {check['uint8_max_diff']} levels, "
        f"{check['psnr_change_db']:+.4f} dB PSNR-Y")
    return (f"backend: {facts['backend']} ({weights.backend_why})\n"
            f"precision: {facts['precision']} ({facts['precision_why']}{checked})")


def _say_weights(weights, predictor, scale: int, self_ensemble: bool, kind) -> None:
    from . import ui

    what = weights.why if kind is None else f"bundled {kind} weights"
    ui.info(f"{weights.label} ({what}; x{scale}, windows of "
            f"{'x'.join(map(str, predictor.window))} LR px"
            + (", self-ensemble x8" if self_ensemble else "") + ")")
    ui.info(_engine_line(weights, predictor))


# A file without fileio.SUMMARY_MARK is not ours: --json never replaces it (an input photo, a
# checkpoint, a manifest, a user's notes).
_SUMMARY_MAX_BYTES = 256 << 20


def _is_summary(path: Path) -> bool:
    import json

    try:
        if path.stat().st_size > _SUMMARY_MAX_BYTES:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    from .core.fileio import SUMMARY_MARK

    return isinstance(data, dict) and SUMMARY_MARK in data


def _check_json_out(json_out: str | None) -> None:
    """--json FILE: checked before any work. Its folder exists and takes a file; an existing
    regular file is replaced only if it is an earlier wdsr summary; a FIFO or device (e.g.
    /dev/stdout) is written into, never replaced. Paths the command writes itself:
    :func:`_json_apart`, once they are known."""
    if json_out is None or json_out == "-":
        return
    import stat

    from .core import fileio

    path = Path(json_out).expanduser()
    if path.is_dir():
        raise WdsrError(f"--json '{json_out}' is a folder", "name a file, e.g. --json out.json")
    if path.exists():
        if stat.S_ISREG(os.stat(path).st_mode) and not _is_summary(path):
            raise WdsrError(f"--json '{json_out}' exists and is not a wdsr summary",
                            "choose a new file name (--json replaces only its own summaries)")
        path = path.resolve()
    folder = path.parent
    if not folder.is_dir():
        raise WdsrError(f"folder '{folder}' for --json '{json_out}' does not exist",
                        "create it first, or pass --json - for stdout")
    try:
        fileio.probe_writable(folder)
    except OSError as exc:
        raise WdsrError(f"cannot write --json '{json_out}': {exc.strerror or exc}",
                        "choose a writable folder, or pass --json - for stdout") from None


def _json_apart(json_out: str | None, writes=(), owned: Path | None = None,
                owner: str = "") -> None:
    """--json must not be one of ``writes`` (files this command writes) nor lie inside
    ``owned`` (a folder the command ``owner`` owns). Reads nothing."""
    if json_out is None or json_out == "-":
        return
    path = Path(json_out).expanduser().resolve()
    if any(Path(w).expanduser().resolve() == path for w in writes):
        raise WdsrError(f"--json '{json_out}' is also where this command writes its output",
                        "give --json another file name")
    if owned is not None and path.is_relative_to(Path(owned).resolve()):
        raise WdsrError(f"--json '{json_out}' is inside the {owner} folder '{owned}', which "
                        "wdsr makes whole", "write the summary elsewhere, e.g. --json out.json")


def _write_json(json_out: str, data: dict, command: str) -> None:
    """--json: the summary on stdout ('-'), into a FIFO or device as it is, else into a file
    (atomically; through a symlink, its target)."""
    import json
    import stat

    from .core import fileio

    text = json.dumps({fileio.SUMMARY_MARK: command, **data}, indent=1, sort_keys=True,
                      allow_nan=False) + "\n"
    path = Path(json_out).expanduser()
    if json_out == "-":
        sys.stdout.write(text)
    elif path.exists() and not stat.S_ISREG(os.stat(path).st_mode):
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise WdsrError(f"cannot write --json '{json_out}': {exc.strerror or exc}",
                            "pass --json - for stdout, or a file name") from None
    else:
        fileio.write_summary(path.resolve() if path.is_symlink() else path, text)


# ------------------------------------------------------------------------------ commands


@app.command("prepare-data")
def prepare_data(
    root_dir: Path | None = typer.Argument(
        None, metavar="[DIV2K_ROOT]",
        help="DIV2K tree or folder of HR images (default: config data.root)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (default: config data.prepared)."),
    scales: str = typer.Option("2,3,4", "--scales", help="Scales to prepare: 2, 3, 4, 8."),
    crop_size: int | None = typer.Option(
        None, "--crop-size", help="HR sub-image side (default: config data.crop_size, 480)."),
    crop_step: int | None = typer.Option(
        None, "--crop-step", help="Stride between sub-images (default: data.crop_step, 240)."),
    workers: int | None = typer.Option(
        None, "--workers", "-j", help="Worker processes (default: data.workers; 0 = per CPU)."),
    make_lr: bool | None = typer.Option(
        None, "--make-lr/--no-make-lr",
        help="Generate missing LR images with the MATLAB bicubic (default: only where no LR "
             "folder exists, always for a plain folder)."),
    degradation: str = typer.Option(
        "bicubic", "--degradation", help="DIV2K LR track to use: bicubic or unknown."),
    valid_count: int = typer.Option(
        0, "--valid-count", help="Plain folder: the last N images (by name) are validation."),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Leave out bad files with a warning instead of stopping."),
    verify: bool = typer.Option(
        False, "--verify", help="Afterwards re-hash every shard and source file (exit 2 on a "
                                "mismatch)."),
    force: bool = typer.Option(
        False, "--force", help="Delete what an earlier run wrote to --out and start over."),
    sample: Path | None = typer.Option(
        None, "--sample", metavar="DIR",
        help="Copy the bundled sample photos to DIR as a DIV2K tree and prepare them into "
             "DIR/prepared."),
    json_out: str | None = JsonOpt,
    config: str | None = ConfigOpt,
    overrides: list[str] | None = SetOpt,
) -> None:
    """Crop DIV2K (or any HR folder) into aligned HR/LR training patches.

    Finds the data (official DIV2K, the model-zoo layout, or a plain folder), shows what it
    found, then writes memory-mappable .npy shards and a manifest. Interrupted runs resume;
    a finished run rerun does nothing.

    Example: wdsr prepare-data ~/datasets/DIV2K --scales 2,3,4

    Example: wdsr prepare-data --sample data/sample
    """
    from . import ui
    from .core.data import prepare as prep

    cfg = _load_config(config, overrides, None)
    _check_json_out(json_out)
    if sample is not None and root_dir is not None:
        raise WdsrError("give either DIV2K_ROOT or --sample, not both",
                        "--sample DIR prepares the bundled photos in DIR")
    try:
        scale_list = [int(s) for s in scales.replace(" ", "").split(",") if s]
    except ValueError:
        raise WdsrError(f"--scales must be a comma-separated list of integers, got '{scales}'",
                        "for example --scales 2,3,4") from None
    root = sample if sample is not None else (root_dir or Path(cfg.data.root))
    default_out = sample / "prepared" if sample is not None else Path(cfg.data.prepared)
    opts = prep.PrepareOptions(
        root=root, out=out or default_out, scales=tuple(scale_list),
        crop_size=crop_size if crop_size is not None else cfg.data.crop_size,
        crop_step=crop_step if crop_step is not None else cfg.data.crop_step,
        workers=workers if workers is not None else cfg.data.workers, make_lr=make_lr,
        skip_bad=skip_bad, force=force, degradation=degradation, valid_count=valid_count)
    prep.check_options(opts)
    _json_apart(json_out, owned=opts.out, owner="--out")

    def verify_and_report(summary: dict) -> None:
        """--verify: re-hash every shard and source; exit 2 on any mismatch."""
        with ui.EventProgress("verifying", "files") as on_event:
            report = prep.verify(opts.out, opts.root, on_event, workers=opts.workers)
        summary["verify"] = report
        bad = report["mismatches"]
        if bad:
            console.print(ui.table(
                "verify: mismatches", ["file", "problem"],
                [(m["file"], m["problem"]) for m in bad]))
        if json_out is not None:
            _write_json(json_out, summary, "prepare-data")
        if bad:
            raise WdsrError(f"{len(bad)} of {report['checked']} files do not match the manifest "
                            f"of '{opts.out}' (first: {bad[0]['file']}: {bad[0]['problem']})",
                            "prepare again with --force")
        ui.info(f"verified: {report['checked']} files match the manifest of '{opts.out}' "
                f"(dataset id {report['dataset_id']})")

    console = ui.err if json_out == "-" else ui.out
    if verify and (Path(opts.out) / prep.MANIFEST).is_file():
        verify_and_report({"status": "verify-only", "out": str(opts.out)})
        return
    if sample is not None:
        prep.check_output_dir(opts.out)
        prep.lay_out_sample(sample)
    inv = prep.discover(opts)  # reads headers only; a wrong path creates no output folder
    prep.check_output_dir(opts.out)
    crop_given = crop_size is not None or crop_step is not None or any(
        o.strip().startswith(("data.crop_size", "data.crop_step")) for o in overrides or [])
    if sample is not None and not crop_given:
        opts.crop_size, opts.crop_step, opts.note = prep.choose_sample_crop(inv, opts)
        prep.check_options(opts)
    console.print(ui.inventory_table(inv))
    for line in inv.notes + ([opts.note] if opts.note else []):
        console.print(f"note: {line}", markup=False, soft_wrap=True)
    plan = prep.make_plan(inv, opts)
    if plan.todo and len(plan.done):
        ui.info(f"resuming: {len(plan.done)} of {len(plan.tasks)} images already done")
    if plan.complete is None:
        try:
            with ui.EventProgress("preparing") as on_event:
                summary = prep.run(plan, on_event)
        except KeyboardInterrupt:
            ui.warn(f"interrupted: {len(plan.done)} of {len(plan.tasks)} images are done and "
                    "kept; rerun the same command to continue")
            raise
    else:
        summary = prep.run(plan, lambda event: ui.warn(event.message))
    patches = ", ".join(f"{k} {v}" for k, v in summary["patches"].items())
    if summary["status"] == "already-prepared":
        ui.info(f"already prepared: {opts.out} (dataset id {summary['dataset_id']}, "
                f"{summary['train_images']} train + {summary['valid_images']} valid images, "
                f"patches {patches}); nothing to do")
    else:
        console.print(ui.key_value_table("prepared", [
            ("output", str(opts.out)), ("dataset id", summary["dataset_id"]),
            ("crop / step", f"{summary['crop_size']} / {summary['crop_step']}"),
            ("train images", str(summary["train_images"])),
            ("valid images", str(summary["valid_images"])),
            ("sub-images per scale", patches),
            ("skipped", str(len(summary["skipped"]))),
            ("time", f"{summary['seconds']:.1f} s ({summary['images_per_s']:.1f} images/s)")]))
    if verify:
        verify_and_report(summary)
    elif json_out is not None:
        _write_json(json_out, summary, "prepare-data")


@app.command()
def train(
    config: str | None = ConfigOpt,
    overrides: list[str] | None = SetOpt,
    device_target: str | None = DeviceOpt,
    steps: int | None = typer.Option(None, "--steps", help="Total steps (= --set train.steps=N)."),
    resume: str | None = typer.Option(
        None, "--resume", metavar="[RUN_DIR]",
        help="Continue a run at its exact step: a run folder, or alone for the latest run."),
    init: Path | None = typer.Option(
        None, "--init", help="Start a new run from these weights (loads what matches)."),
    name: str | None = typer.Option(None, "--name", help="Run folder name (default: recipe name)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders go."),
    allow_data_change: bool = typer.Option(
        False, "--allow-data-change", help="Resume even though the prepared data changed."),
    print_config: bool = typer.Option(
        False, "--print-config", help="Show the resolved config and model summary, then exit."),
    devices: int | None = typer.Option(
        None, "--devices", min=1, help="Ranks to start on this machine, one per device "
        "(default 1; with --rank-table, this server's count). data.batch_size is per device: "
        "global batch = batch_size x devices x nodes."),
    rank_table: Path | None = typer.Option(
        None, "--rank-table", help="Ascend HCCL rank table (JSON): start this server's ranks "
        "with HCCL. Without it, several devices use MindSpore's dynamic cluster."),
    server_id: str | None = typer.Option(
        None, "--server-id", help="This machine's server_id in the rank table (default: the "
        "server matching one of its addresses)."),
    nodes: int = typer.Option(
        1, "--nodes", min=1, help="Machines in a dynamic-cluster job (run the command on each)."),
    node_rank: int = typer.Option(
        0, "--node-rank", min=0, help="This machine's index 0..nodes-1; node 0 runs the "
        "scheduler and rank 0."),
    master: str | None = typer.Option(
        None, "--master", metavar="HOST:PORT", help="Scheduler address (node 0), the same on "
        "every node; default with one node: 127.0.0.1 and a free port."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the launch plan (ranks, devices, environment, commands, "
        "logs) and exit without starting anything or touching data."),
    json_out: str | None = typer.Option(
        None, "--json", help="With --dry-run: write the plan as JSON to this file ('-' = "
        "stdout)."),
    stall_timeout: float = typer.Option(
        300.0, "--stall-timeout", min=0.0, help="Stop the run when no rank has reported for "
        "this many seconds (0 = never)."),
    device_id: int | None = typer.Option(
        None, "--device-id", help="The card for a one-device run on GPU/Ascend (default: "
        "DEVICE_ID from the environment, else runtime.device_id)."),
    rank_table_example: bool = typer.Option(
        False, "--rank-table-example", help="Print an 8-device example rank table (JSON) to "
        "edit, and exit."),
) -> None:
    """Train WDSR on one or more devices; writes runs/NAME/ (checkpoints, log, metrics, plot).

    data.batch_size is per device: the global batch is batch_size x devices x nodes (the
    recipes' 16 on --devices 8 trains with 128 patches per step). Every rank starts from the
    same seed and averages its gradients with the others; rank 0 validates and writes the run
    folder; each rank logs to runs/NAME/logs/rank_N.log (machines without rank 0: to
    runs/NAME-nodeK/logs/).

    Example: wdsr train --config demo --set train.lr=5e-4

    Several devices: wdsr train -c wdsr-b-x2 --devices 8 --rank-table hccl_8p.json (Ascend);
    wdsr train -c demo --devices 2 --device-target CPU (dynamic cluster); wdsr train -c
    wdsr-b-x2 --devices 8 --nodes 2 --node-rank 0 --master 10.0.0.1:8118 (node 0 of two).
    Add --dry-run to see the plan.
    """
    from . import ui
    from .core.launch import session as L

    if rank_table_example:
        from .core.launch.ranktable import example_table_text

        sys.stdout.write(example_table_text())
        return
    if json_out is not None and not dry_run:
        raise WdsrError("--json goes with --dry-run", "add --dry-run to print the launch plan")
    _check_json_out(json_out)
    request = L.TrainRequest(
        config=config, overrides=list(overrides or []), device_target=device_target,
        steps=steps, resume=resume, init=init, name=name, runs_dir=runs_dir,
        allow_data_change=allow_data_change, devices=devices, rank_table=rank_table,
        server_id=server_id, nodes=nodes, node_rank=node_rank, master=master,
        device_id=device_id, dry_run=dry_run, stall_timeout=stall_timeout)
    if print_config:
        from .core.config import dump_yaml
        from .core.model_info import summarize

        cfg, _ = L.load_config(request)
        ui.out.print(dump_yaml(cfg), end="", markup=False)
        ui.out.print(ui.key_value_table("model", summarize(cfg.model).rows()))
        return
    job = L.plan_train(request)  # every check; nothing is created yet
    if dry_run:
        _print_plan(job.summary(), job.batch_note, json_out)
        return
    for warning in job.warnings:
        ui.warn(warning)
    for line in (job.plan.description if job.plan.mode != "single" else []) + job.notes:
        ui.info(line)
    run_dir = job.prepare_folder()  # an unwritable --runs-dir stops here, before the table
    with ui.LaunchView(f"wdsr train {job.cfg.name}: {run_dir}",
                       [p.rank for p in job.plan.workers], job.batch_note) as view:
        outcome = job.run(view.handle, on_status=view.process_state, on_note=view.note)
    if outcome.error is not None:
        raise outcome.error
    if outcome.failure is not None:
        ui.launch_failure(outcome.failure)
    for line in outcome.messages:
        ui.info(line)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def _print_plan(summary: dict, batch_note: str, json_out: str | None) -> None:
    from . import ui

    if json_out is not None:
        _write_json(json_out, summary, "train --dry-run")
        return
    for line in summary["description"]:
        ui.info(line)
    for warning in summary["warnings"]:
        ui.warn(warning)
    ui.launch_plan(summary)
    ui.info(batch_note + "; nothing was started (--dry-run)")


@app.command()
def evaluate(
    scale: int | None = ScaleOpt,
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Checkpoint to score, or 'bundled' (default: the newest "
        "runs/*/best.ckpt of this scale, else the bundled weights)."),
    model: Path | None = ModelOpt,
    weights_choice: str = typer.Option(
        "auto", "--weights", help="Which bundled weights: auto (photo weights when --degrade "
        "has a JPEG step, clean ones otherwise), clean or photo."),
    backend: str = BackendOpt,
    precision: str = _precision_opt("fp32", "Default fp32: the numbers papers compare."),
    hr: Path | None = typer.Option(
        None, "--hr", help="Folder of HR images (default: DIV2K validation under data.root)."),
    lr: Path | None = typer.Option(
        None, "--lr", help="Folder of LR images matched to --hr by name (0801x2.png or "
        "0801.png); default: made from HR with the MATLAB bicubic."),
    protocol: str | None = typer.Option(
        None, "--protocol", help="y: PSNR on Y, border = scale (SR papers); rgb: RGB, border = "
        "scale + 6 (DIV2K/EDSR). Default: eval.protocol."),
    self_ensemble: bool | None = typer.Option(
        None, "--self-ensemble/--no-self-ensemble", help="x8 self-ensemble "
        "(default: eval.self_ensemble)."),
    tile: int | None = TileOpt,
    bicubic: bool = typer.Option(
        False, "--bicubic", help="Add the MATLAB-bicubic baseline columns."),
    degrade: str | None = typer.Option(
        None, "--degrade", help="Make each LR from its HR with this chain, as real photos "
        "are: e.g. jpeg:75, noise:5,jpeg:50 or blur:1.2,jpeg:90,jpeg:75@4 (blur:S, down:KERNEL, "
        "noise:S, graynoise:S, jpeg:Q[@SHIFT]); deterministic."),
    save_images: Path | None = typer.Option(
        None, "--save-images", help="Write each 8-bit result as NAME_x{scale}.png here."),
    json_out: str | None = JsonOpt,
    report: Path | None = typer.Option(
        None, "--report", help="Write a visual report to this new folder: index.html with "
        "the scores and, per image, the crops where the model gains most and least over "
        "bicubic (implies --bicubic)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an earlier wdsr report in the --report folder "
        "and earlier --save-images results."),
    limit: int = typer.Option(0, "--limit", help="Only the first N images (0 = all)."),
    runs_dir: Path = typer.Option(
        Path("runs"), "--runs-dir", help="Where to look for the default checkpoint."),
    config: str | None = ConfigOpt,
    overrides: list[str] | None = SetOpt,
    device_target: str | None = DeviceOpt,
) -> None:
    """Report PSNR/SSIM on DIV2K validation or any image folder.

    Example: wdsr evaluate --scale 2 --hr photos/ --bicubic --json scores.json

    Example: wdsr evaluate --checkpoint bundled --hr photos/ --report report/
    """
    _ctrl_c_stays_with_python()
    from . import ui
    from .core import evaluate as E
    from .core.config import PROTOCOLS
    from .core.inference.weights import named_checkpoint, resolve

    cfg = _load_config(config, overrides, device_target)
    protocol = cfg.eval.protocol if protocol is None else protocol
    if protocol not in PROTOCOLS:
        raise WdsrError(f"unknown protocol '{protocol}'",
                        "use y (PSNR on Y, border = scale) or rgb (RGB, border = scale + 6)")
    self_ensemble = cfg.eval.self_ensemble if self_ensemble is None else self_ensemble
    _check_scale(scale)
    _obsolete_tile(tile if tile is not None else (cfg.eval.tile or None),
                   "--tile" if tile is not None else "eval.tile")
    _check_json_out(json_out)
    if limit < 0:
        raise WdsrError("--limit must be 0 or more", "0 = all images")
    if lr is not None and hr is None:
        raise WdsrError("--lr needs --hr", "pass the matching HR folder with --hr")
    chain = None
    if degrade is not None:
        from .core.data.degrade import parse_spec

        chain = parse_spec(degrade)  # a bad spec is reported before anything loads
        if lr is not None:
            raise WdsrError("--degrade makes each LR image from its HR image, so it does not "
                            "go with --lr", "drop --lr (or --degrade)")
    named_checkpoint(checkpoint, scale)  # a wrong path is reported before anything else
    kind, kind_why = None, ""
    if _bundled_choice(weights_choice, checkpoint, model):
        from .core.data.degrade import jpeg_quality_in
        from .core.inference.weights import bundled_kind

        quality = jpeg_quality_in(chain) if chain is not None else None
        kind, kind_why = bundled_kind(weights_choice, quality, scale or 2)
    for folder, what in ((hr, "--hr"), (lr, "--lr")):
        if folder is not None and not folder.is_dir():
            raise WdsrError(f"{what} folder '{folder}' does not exist", "check the path")
    if report is not None:
        from .core import report as R

        reads = ((hr, "the --hr folder"), (lr, "the --lr folder"), (checkpoint, "the checkpoint"),
                 (model, "the model"), (config, "the config file"), (runs_dir, "the runs folder"),
                 (cfg.data.root if hr is None else None, "the DIV2K data"))
        report = R.check_report_dest(report, overwrite, reads)
        bicubic = True
        if save_images is not None and Path(os.path.realpath(save_images)).is_relative_to(
                os.path.realpath(report)):
            raise WdsrError(f"--save-images '{save_images}' is inside the --report folder",
                            "save the images elsewhere (the report folder is made whole, "
                            "at the end)")
        _json_apart(json_out, owned=report, owner="--report")

    weights = resolve(checkpoint, model, scale, backend, default="newest", runs_dir=runs_dir,
                      device_target=cfg.runtime.device_target, device_id=cfg.runtime.device_id,
                      precision=precision, bundled=kind or "clean")
    scale = weights.scale
    if hr is not None:
        dataset = E.dataset_from_folders(hr, lr, scale)
    else:
        dataset = E.dataset_from_div2k(cfg.data.root, scale)
    dataset = dataset.limited(limit)
    if degrade is not None:
        dataset = dataset.degraded(degrade)
    if save_images is not None:
        save_images = E.check_save_dir(save_images, dataset, overwrite)
    predictor = _load_weights(weights, self_ensemble)
    step = "?" if weights.step is None else weights.step
    chose = f"{weights.bundled} weights: {kind_why}; " if weights.bundled else ""
    ui.info(f"{weights.label} ({chose}{weights.why}; step {step})")
    ui.info(_engine_line(weights, predictor))
    ui.info(f"data: {dataset.description}")

    collector = R.ReportCollector(scale, protocol) if report is not None else None
    with ui.ImageProgress("evaluating", len(dataset)) as bar:
        def on_image(done: int, total: int | None, row: dict) -> None:
            bar.done(done - 1, total or done)

        result = E.evaluate_pairs(predictor, dataset, scale, protocol, bicubic=bicubic,
                                  on_image=on_image, save_dir=save_images,
                                  on_arrays=collector.add if collector else None,
                                  overwrite=overwrite)
    result.update(checkpoint=str(weights.path), checkpoint_step=weights.step,
                  dataset=dataset.description,
                  degrade=dataset.degrade.spec() if dataset.degrade else None,
                  weights=weights.bundled, weights_why=kind_why if weights.bundled else None,
                  **_engine_facts(weights, predictor))
    console = ui.err if json_out == "-" else ui.out
    console.print(ui.eval_table(result, str(weights.path)))
    if save_images is not None:
        ui.info(f"saved {result['count']} images in {save_images}")
    if json_out is not None:
        _write_json(json_out, E.result_to_json(result), "evaluate")
    if report is not None:
        facts = R.describe_weights(weights.path, predictor.meta, weights.why) + [
            ("data", dataset.description)] + (
            [("degradation", dataset.degrade.spec())] if dataset.degrade else [])
        ui.info(f"report: {R.write_report(report, collector, result, facts, overwrite=overwrite)}")


@app.command()
def export(
    fmt: str = typer.Option("mindir", "--format", "-f", help="mindir, onnx or air (Ascend "
                            "only)."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Checkpoint to export, or 'bundled' (default: the newest "
        "runs/*/best.ckpt of --scale, else the bundled weights)."),
    scale: int | None = typer.Option(
        None, "--scale", "-s", help="Scale of the default checkpoint (default 2)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Model file or folder (default: CHECKPOINT-STEM.mindir / "
        ".onnx next to the checkpoint; the current folder for the bundled weights)."),
    input_size: str | None = typer.Option(
        None, "--input-size", metavar="HxW", help="Fixed LR input height x width (default: "
        "dynamic batch/height/width)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output."),
    no_check: bool = typer.Option(
        False, "--no-check", help="Skip running the exported file against the checkpoint."),
    json_out: str | None = JsonOpt,
    runs_dir: Path = typer.Option(
        Path("runs"), "--runs-dir", help="Where to look for the default checkpoint."),
    device_target: str | None = DeviceOpt,
) -> None:
    """Write a deployable MINDIR / ONNX / AIR model, checked against its checkpoint.

    Weight norm is folded into plain convolutions. MINDIR and ONNX take any input size unless
    --input-size fixes one. The file is then run on a real photo at two sizes (MINDIR with
    MindSpore, ONNX with ONNX Runtime) and compared with the checkpoint; it is written only if
    the largest difference is within tolerance. OUTPUT.json next to it records the I/O
    contract; run it with wdsr upscale/evaluate --model.

    Example: wdsr export --checkpoint runs/wdsr-b-x2/best.ckpt --format onnx
    """
    _ctrl_c_stays_with_python()
    from . import ui
    from .core.inference import export as X
    from .core.inference.weights import named_checkpoint, resolve, start_mindspore

    cfg = _load_config(None, None, device_target)
    _check_scale(scale)
    _check_json_out(json_out)
    fmt = X.check_format(fmt, cfg.runtime.device_target)
    size = X.parse_input_size(input_size)
    checkpoint = named_checkpoint(checkpoint, scale)
    if checkpoint is not None:  # every check before MindSpore is imported
        X.plan_export(checkpoint, fmt, output, size, force, cfg.runtime.device_target)
    weights = resolve(checkpoint, None, scale, "mindspore", default="newest", runs_dir=runs_dir,
                      device_target=cfg.runtime.device_target, device_id=cfg.runtime.device_id)
    checkpoint = weights.path
    plan = X.plan_export(checkpoint, fmt, output, size, force, cfg.runtime.device_target)
    _json_apart(json_out, [plan.output, plan.contract])
    start_mindspore(cfg.runtime.device_target, cfg.runtime.device_id)
    ui.info(f"checkpoint: {checkpoint} ({weights.why})")
    console = ui.err if json_out == "-" else ui.out
    try:
        with ui.err.status(f"exporting {fmt.upper()}") as status:
            result = X.export_model(
                checkpoint, fmt, output, size, force, check=not no_check,
                device_target=cfg.runtime.device_target,
                on_stage=lambda text: status.update(text))
    except X.ParityError as exc:
        console.print(_parity_table(exc.result["parity"]))
        raise
    console.print(ui.key_value_table("exported", [
        ("file", result["output"]), ("contract", result["contract"]),
        ("format", fmt.upper()),
        ("input", "N x 3 x H x W, any size" if result["dynamic_shape"] else
         "1 x 3 x {} x {} (fixed; larger images run in windows)".format(*result["input_size"])),
        ("scale", f"x{result['scale']}"),
        ("size", f"{result['bytes'] / 1e6:.2f} MB"),
        ("time", f"{result['seconds']:.1f} s")]))
    parity = result["parity"]
    if parity["checked"]:
        console.print(_parity_table(parity))
    else:
        ui.warn(f"parity check skipped: {parity['reason']}")
    if json_out is not None:
        _write_json(json_out, result, "export")


def _parity_table(parity: dict):
    from . import ui

    rows = [("{}x{}".format(*r["lr_size"]),
             "non-finite" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.2e}",
             f"{r['uint8_differ']:,} of {r['uint8_values']:,}",
             f"{100 * r['uint8_differ_share']:.4f}%", "yes" if r["passed"] else "NO")
            for r in parity["images"]]
    return ui.table(f"parity vs checkpoint: {parity['runtime']} (tolerance max |diff| <= "
                    f"{parity['tolerance_max_abs_diff']} on 0..255)",
                    ["LR size (HxW)", "max |diff|", "8-bit values differing", "share", "ok"],
                    rows)


@app.command()
def upscale(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT...", help="Image files, folders (their images) or globs."),
    output: str | None = typer.Option(
        None, "--output", "-o", help="Output file (one input) or folder (created if missing); "
        "default: NAME_x{scale}.png next to each input."),
    scale: int | None = ScaleOpt,
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Checkpoint to use (default, or 'bundled': the weights shipped "
        "with wdsr)."),
    model: Path | None = ModelOpt,
    weights_choice: str = WeightsOpt,
    backend: str = BackendOpt,
    precision: str = _precision_opt("auto", "Default auto."),
    tile: int | None = TileOpt,
    self_ensemble: bool = typer.Option(
        False, "--self-ensemble", help="Average the 8 flips/transposes (8x slower)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    json_out: str | None = JsonOpt,
    device_target: str | None = DeviceOpt,
) -> None:
    """Super-resolve images (works out of the box with the bundled weights).

    Example: wdsr upscale photo.png --scale 4 -o photo_x4.png
    """
    _ctrl_c_stays_with_python()
    from . import ui
    from .core.inference import upscale as U
    from .core.inference.weights import named_checkpoint, resolve

    cfg = _load_config(None, None, device_target)
    _check_scale(scale)
    _obsolete_tile(tile)
    _check_json_out(json_out)
    named_checkpoint(checkpoint, scale)  # a wrong path is reported before anything else
    bundled = _bundled_choice(weights_choice, checkpoint, model)
    found = U.collect_inputs(inputs)
    weights = resolve(checkpoint, model, scale, backend, default="bundled",
                      device_target=cfg.runtime.device_target, device_id=cfg.runtime.device_id,
                      precision=precision,
                      bundled="photo" if weights_choice == "photo" else "clean")
    scale = weights.scale
    planned = U.plan_jobs(found, output, scale, overwrite)
    jobs = planned.jobs
    _json_apart(json_out, [job.target for job in jobs])
    for left_out, source in planned.skipped:
        ui.info(f"left out '{left_out}': it is the x{scale} output of '{source}'")
    todo, failures = U.preflight(jobs)
    if len(jobs) == 1 and failures:
        raise WdsrError(failures[0]["error"])
    images: list[dict] = []
    summary = {"interrupted": False, "seconds": 0.0}
    ran_on, engine = None, {}
    if todo:
        choices = U.choose_weights(todo, weights_choice, scale) if bundled else \
            [(None, weights.why)] * len(todo)
        loaded: dict = {}
        for kind, _ in choices:  # each kind of weights loaded once, in order of first use
            if kind not in loaded:
                w = weights if kind in (None, weights.bundled) else resolve(
                    checkpoint, None, scale, backend, default="bundled", bundled=kind,
                    device_target=cfg.runtime.device_target, device_id=cfg.runtime.device_id,
                    precision=precision)
                loaded[kind] = (w, _load_weights(w, self_ensemble))
                _say_weights(w, loaded[kind][1], scale, self_ensemble, kind)
        first, predictor = loaded[choices[0][0]]
        ran_on, engine = predictor.backend.name, _engine_facts(first, predictor)
        with ui.ImageProgress("upscaling", len(todo)) as bar:
            summary = U.upscale_batch(
                predictor, todo,
                on_start=lambda i, n, job: bar.start(i, n, job.source.name),
                on_tile=bar.tile,
                on_done=lambda i, n, job, result, error: bar.done(i, n),
                per_job=[loaded[kind][1] for kind, _ in choices])
        images = summary["images"]
        if bundled:
            why_of = {str(job.source): c for job, c in zip(todo, choices, strict=True)}
            for row in images:
                row["weights"], row["weights_why"] = why_of[row["input"]]
        order = {str(j.source): k for k, j in enumerate(jobs)}
        failures = sorted(failures + summary["failures"], key=lambda f: order[f["input"]])
    seconds = summary["seconds"]
    if len(jobs) == 1 and failures:
        raise WdsrError(failures[0]["error"])
    console = ui.err if json_out == "-" else ui.out
    if images:
        console.print(ui.upscale_table(images, ui.engine_label(ran_on, engine.get("precision"))))
    if failures:
        console.print(ui.failures_table(failures))
    megapixels = sum(r["output_megapixels"] for r in images)
    if images:
        ui.info(f"{len(images)} image(s), {megapixels:.2f} output MP in {seconds:.1f} s: "
                f"{megapixels / seconds:.2f} MP/s, {len(images) / seconds:.2f} images/s")
    if json_out is not None:
        _write_json(json_out, {
            "scale": scale,
            "checkpoint": str(weights.path) if weights.kind == "checkpoint" else None,
            "model": None if model is None else str(model), "backend": ran_on,
            "weights": sorted({r["weights"] for r in images if "weights" in r}) or None,
            **{k: v for k, v in engine.items() if k != "backend"},
            "window": list(predictor.window) if todo else None,
            "self_ensemble": self_ensemble, "images": images, "failures": failures,
            "interrupted": summary["interrupted"], "seconds": seconds,
            "output_megapixels_per_second": megapixels / seconds if seconds > 0 else None},
            "upscale")
    if summary["interrupted"]:
        raise Interrupted(f"interrupted: {len(images)} of {len(jobs)} images were written "
                          "(each complete, listed above); nothing else was left behind",
                          "rerun with --overwrite to redo them all, or pass only the rest")
    if failures:
        ui.error(f"{len(failures)} of {len(jobs)} images failed (listed above)",
                 "the others were written")
        raise typer.Exit(2)


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


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every expected failure becomes one line on stderr and exit code 2."""
    args = _optional_values(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in args
    command = typer.main.get_command(app)
    interrupted_reported = False
    from .core.runtime import interruption, stop_on_signals

    stop_on_signals()  # SIGTERM and SIGHUP stop a command as Ctrl-C does (exit 143, 129)
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
        code = getattr(exc, "exit_code", 2)
        interrupted_reported = code in (129, 130, 143)
    except (KeyboardInterrupt, typer.Abort):
        from . import ui

        message, code = interruption()
        ui.error(message)
        interrupted_reported = True
    except typer.Exit as exc:
        code = exc.exit_code
    except Exception as exc:  # a bug: say so plainly, full detail with --debug
        if debug:
            raise
        from . import ui

        ui.error(f"internal error: {type(exc).__name__}: {exc}",
                 "rerun with --debug for the traceback and report it")
        code = 1
    if code == 130 and not interrupted_reported:
        # typer turns Ctrl-C inside a command into exit code 130 without a word: say it.
        from . import ui

        message, code = interruption()
        ui.error(message)
    sys.exit(code or 0)

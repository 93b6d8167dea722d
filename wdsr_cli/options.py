"""Every option of the `wdsr` commands, with its help text, so each command in cli.py reads as
its list of options and the few lines that call the core. Grouped by the command that owns
them; options shared by several commands come first."""

from __future__ import annotations

from pathlib import Path

import typer

# ------------------------------------------------------------------------------- shared

Config = typer.Option(
    None, "--config", "-c", help="Recipe name (see configs/) or path to a YAML file.")
Set = typer.Option(
    None, "--set", help="Override one config value, e.g. --set train.lr=1e-3 (repeatable).")
DeviceTarget = typer.Option(
    None, "--device-target", help="auto (Ascend, then GPU, then CPU), CPU, GPU or Ascend.")
Scale = typer.Option(
    None, "--scale", "-s", help="Upscaling factor 2, 3, 4 or 8 (default: the checkpoint's, "
    "else 2).")
Model = typer.Option(
    None, "--model", help="Use an exported .mindir/.onnx (wdsr export) instead of a checkpoint.")
Json = typer.Option(
    None, "--json", metavar="FILE", help="Write a machine-readable summary as JSON to FILE "
    "('-' or --json alone = stdout; the tables then go to stderr).")
Backend = typer.Option(
    "auto", "--backend", help="auto (on a CPU the engine measured fastest there: OpenVINO or "
    "ONNX Runtime; else MindSpore), mindspore, onnxruntime or openvino (these two run the "
    "checkpoint's ONNX form, made and checked once).")
Tile = typer.Option(None, "--tile", hidden=True,
                    help="Obsolete, no effect: images always run in fixed windows.")
RunsDir = typer.Option(
    Path("runs"), "--runs-dir", help="Where to look for the default checkpoint.")


def precision(default: str, why: str):
    return typer.Option(
        default, "--precision", help="auto (bf16 on OpenVINO where the CPU has native bf16 "
        "and it was measured faster, else fp32), fp32 or bf16 (checked once against fp32: "
        f"8-bit values within 2 levels, PSNR within 0.01 dB, else refused). {why}")


def data(what: str):
    return typer.Option(None, "--data", metavar="DIR", help=what)


# -------------------------------------------------------------------------- prepare-data

PrepRoot = typer.Argument(
    None, metavar="[DIV2K_ROOT]", help="DIV2K tree or folder of HR images (default: config "
    "data.root).")
PrepOut = typer.Option(
    None, "--out", "-o", help="Output folder (default: config data.prepared).")
PrepScales = typer.Option("2,3,4", "--scales", help="Scales to prepare: 2, 3, 4, 8.")
PrepCropSize = typer.Option(
    None, "--crop-size", help="HR sub-image side (default: config data.crop_size, 480).")
PrepCropStep = typer.Option(
    None, "--crop-step", help="Stride between sub-images (default: data.crop_step, 240).")
PrepWorkers = typer.Option(
    None, "--workers", "-j", help="Worker processes (default: data.workers; 0 = per CPU).")
PrepMakeLr = typer.Option(
    None, "--make-lr/--no-make-lr", help="Generate missing LR images with the MATLAB bicubic "
    "(default: only where no LR folder exists, always for a plain folder).")
PrepDegradation = typer.Option(
    "bicubic", "--degradation", help="DIV2K LR track to use: bicubic or unknown.")
PrepValidCount = typer.Option(
    0, "--valid-count", help="Plain folder: the last N images (by name) are validation.")
PrepSkipBad = typer.Option(
    False, "--skip-bad", help="Leave out bad files with a warning instead of stopping.")
PrepVerify = typer.Option(
    False, "--verify", help="Afterwards re-hash every shard and source file (exit 2 on a "
    "mismatch).")
PrepForce = typer.Option(
    False, "--force", help="Delete what an earlier run wrote to --out and start over.")
PrepSample = typer.Option(
    None, "--sample", metavar="DIR", help="Copy the bundled sample photos to DIR as a DIV2K "
    "tree and prepare them into DIR/prepared.")

# --------------------------------------------------------------------------------- train

TrainSteps = typer.Option(None, "--steps", help="Total steps (= --set train.steps=N).")
TrainData = data("Prepared data to train on (wdsr prepare-data --out DIR) "
                 "(= --set data.prepared=DIR).")
TrainResume = typer.Option(
    None, "--resume", metavar="[RUN_DIR]",
    help="Continue a run at its exact step: a run folder, or alone for the latest run.")
TrainInit = typer.Option(
    None, "--init", help="Start a new run from these weights (loads what matches).")
TrainName = typer.Option(None, "--name", help="Run folder name (default: recipe name).")
TrainRunsDir = typer.Option(Path("runs"), "--runs-dir", help="Where run folders go.")
TrainAllowDataChange = typer.Option(
    False, "--allow-data-change", help="Resume even though the prepared data changed.")
TrainPrintConfig = typer.Option(
    False, "--print-config", help="Show the resolved config and model summary, then exit.")
TrainDevices = typer.Option(
    None, "--devices", min=1, help="Ranks to start on this machine, one per device "
    "(default 1; with --rank-table, this server's count). data.batch_size is per device: "
    "global batch = batch_size x devices x nodes.")
TrainRankTable = typer.Option(
    None, "--rank-table", help="Ascend HCCL rank table (JSON): start this server's ranks "
    "with HCCL. Without it, several devices use MindSpore's dynamic cluster.")
TrainServerId = typer.Option(
    None, "--server-id", help="This machine's server_id in the rank table (default: the "
    "server matching one of its addresses).")
TrainNodes = typer.Option(
    1, "--nodes", min=1, help="Machines in a dynamic-cluster job (run the command on each).")
TrainNodeRank = typer.Option(
    0, "--node-rank", min=0, help="This machine's index 0..nodes-1; node 0 runs the "
    "scheduler and rank 0.")
TrainMaster = typer.Option(
    None, "--master", metavar="HOST:PORT", help="Scheduler address (node 0), the same on "
    "every node; default with one node: 127.0.0.1 and a free port.")
TrainDryRun = typer.Option(
    False, "--dry-run", help="Print the launch plan (ranks, devices, environment, commands, "
    "logs) and exit without starting anything or touching data.")
TrainJson = typer.Option(
    None, "--json", help="With --dry-run: write the plan as JSON to this file ('-' = "
    "stdout).")
TrainStallTimeout = typer.Option(
    300.0, "--stall-timeout", min=0.0, help="Stop the run when no rank has reported for "
    "this many seconds (0 = never).")
TrainDeviceId = typer.Option(
    None, "--device-id", help="The card for a one-device run on GPU/Ascend (default: "
    "DEVICE_ID from the environment, else runtime.device_id).")
TrainRankTableExample = typer.Option(
    False, "--rank-table-example", help="Print an 8-device example rank table (JSON) to "
    "edit, and exit.")

# ------------------------------------------------------------------------------ evaluate

EvalCheckpoint = typer.Option(
    None, "--checkpoint", help="Checkpoint to score, or 'bundled' (default: the newest "
    "runs/*/best.ckpt of this scale, else the bundled weights).")
EvalWeights = typer.Option(
    "auto", "--weights", help="Which bundled weights: auto (by --degrade's last JPEG "
    "step: photo-low at q80 or lower, photo up to q92; otherwise photo when the LR reads noisy "
    "(lossless, or a JPEG step above q92), clean if not), clean, photo or photo-low.")
EvalPrecision = precision("fp32", "Default fp32: the numbers papers compare.")
EvalData = data("DIV2K tree whose validation images to score (= --set data.root=DIR); "
                "for any other folder of images use --hr.")
EvalHr = typer.Option(
    None, "--hr", help="Folder of HR images (default: DIV2K validation under data.root).")
EvalLr = typer.Option(
    None, "--lr", help="Folder of LR images matched to --hr by name (0801x2.png or "
    "0801.png); default: made from HR with the MATLAB bicubic.")
EvalProtocol = typer.Option(
    None, "--protocol", help="y: PSNR on Y, border = scale (SR papers); rgb: RGB, border = "
    "scale + 6 (DIV2K/EDSR). Default: eval.protocol.")
EvalSelfEnsemble = typer.Option(
    None, "--self-ensemble/--no-self-ensemble", help="x8 self-ensemble "
    "(default: eval.self_ensemble).")
EvalBicubic = typer.Option(False, "--bicubic", help="Add the MATLAB-bicubic baseline columns.")
EvalDegrade = typer.Option(
    None, "--degrade", help="Make each LR from its HR with this chain, as real photos "
    "are: e.g. jpeg:75, noise:5,jpeg:50 or blur:1.2,jpeg:90,jpeg:75@4 (blur:S, down:KERNEL, "
    "noise:S, graynoise:S, jpeg:Q[@SHIFT]); deterministic.")
EvalSaveImages = typer.Option(
    None, "--save-images", help="Write each 8-bit result as NAME_x{scale}.png here.")
EvalReport = typer.Option(
    None, "--report", help="Write a visual report to this new folder: index.html with "
    "the scores and, per image, the crops where the model gains most and least over "
    "bicubic (implies --bicubic).")
EvalOverwrite = typer.Option(
    False, "--overwrite", help="Replace an earlier wdsr report in the --report folder "
    "and earlier --save-images results.")
EvalLimit = typer.Option(0, "--limit", help="Only the first N images (0 = all).")

# -------------------------------------------------------------------------------- export

ExportFormat = typer.Option(
    "mindir", "--format", "-f", help="mindir, onnx or air (Ascend only).")
ExportCheckpoint = typer.Option(
    None, "--checkpoint", help="Checkpoint to export, or 'bundled' (default: the newest "
    "runs/*/best.ckpt of --scale, else the bundled weights).")
ExportScale = typer.Option(
    None, "--scale", "-s", help="Scale of the default checkpoint (default 2).")
ExportOutput = typer.Option(
    None, "--output", "-o", help="Model file or folder (default: CHECKPOINT-STEM.mindir / "
    ".onnx next to the checkpoint; the current folder for the bundled weights).")
ExportInputSize = typer.Option(
    None, "--input-size", metavar="HxW", help="Fixed LR input height x width (default: "
    "dynamic batch/height/width).")
ExportForce = typer.Option(False, "--force", help="Replace an existing output.")
ExportNoCheck = typer.Option(
    False, "--no-check", help="Skip running the exported file against the checkpoint.")

# ------------------------------------------------------------------------------- upscale

UpInputs = typer.Argument(
    ..., metavar="INPUT...", help="Image files, folders (their images), globs, or one video "
    "file (.mp4, .mkv, .mov, .webm, .avi; an animated GIF/PNG).")
UpOutput = typer.Option(
    None, "--output", "-o", help="Output file (one input) or folder (created if missing); "
    "default: NAME_x{scale}.png next to each input.")
UpCheckpoint = typer.Option(
    None, "--checkpoint", help="Checkpoint to use (default, or 'bundled': the weights shipped "
    "with wdsr).")
UpWeights = typer.Option(
    "auto", "--weights", help="Which bundled weights: auto (photo weights for compressed "
    "inputs, by the quality read from the file: photo-low for JPEGs of quality 80 or lower and "
    "AVIFs of 50 or lower, photo for JPEGs to q92, lossy WebPs to q85 and AVIFs to q65; clean "
    "for lossless, HEIC and lighter inputs, photo when those read noisy), clean (trained on "
    "bicubic LR), photo (trained on JPEG, noise and blur) or photo-low (heavy JPEG).")
UpPrecision = precision("auto", "Default auto.")
UpSelfEnsemble = typer.Option(
    False, "--self-ensemble", help="Average the 8 flips/transposes (8x slower).")
UpOverwrite = typer.Option(False, "--overwrite", help="Replace existing outputs.")
UpStripMetadata = typer.Option(
    False, "--strip-metadata", help="Write no EXIF (capture date, camera, GPS) into the "
    "outputs. The colour profile is kept: without it the colours would change. Images only.")
UpOutscale = typer.Option(
    None, "--outscale", help="Output size factor, any number > 0 (e.g. 1.5): the network "
    "runs at --scale (default: the smallest bundled scale >= it), then a bicubic resize.")
UpCrf = typer.Option(
    None, "--crf", help="Video quality, lower is better (default: h264 18, h265 20, vp9 24, "
    "av1 28).")
UpCodec = typer.Option(
    None, "--codec", help="Video encoder: h264 (default), h265, vp9 (default for .webm), av1 "
    "or ffv1 (lossless).")

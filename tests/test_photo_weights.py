"""Which bundled weights run: photo weights for JPEG inputs, clean ones for lossless inputs
(--weights auto|clean|photo), in upscale and in evaluate --degrade."""

from __future__ import annotations

import io
import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error, run_wdsr
from PIL import Image as PILImage

from wdsr_cli.core.checkpoints import bundled_checkpoint
from wdsr_cli.core.data.compression import jpeg_quality_of, lossy_format_of
from wdsr_cli.core.data.images import read_rgb_uint8
from wdsr_cli.core.errors import WdsrError
from wdsr_cli.core.inference import weights as W

SAMPLE = files("wdsr_cli") / "assets" / "sample"


def _crop(name: str = "dogs.png", size: int = 60) -> np.ndarray:
    return np.ascontiguousarray(read_rgb_uint8(SAMPLE / name)[:size, :size])


@pytest.mark.parametrize("quality", [20, 50, 75, 90, 95, 100])
def test_a_jpeg_says_its_quality_and_a_png_is_lossless(quality, tmp_path):
    buf = io.BytesIO()
    PILImage.fromarray(_crop()).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    assert jpeg_quality_of(buf) == quality
    PILImage.fromarray(_crop()).save(tmp_path / "a.png")
    assert jpeg_quality_of(tmp_path / "a.png") is None
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    assert jpeg_quality_of(tmp_path / "b.jpg") is None  # unreadable: the reader reports it


def _lossy_files(folder: Path) -> None:
    """The lossy formats that are not JPEG, and lossless WebP: what lossy_format_of says."""
    import pillow_heif
    from PIL import ImageCms

    pillow_heif.register_heif_opener()  # to write HEIC here
    rgb = PILImage.fromarray(_crop())
    rgba = PILImage.fromarray(np.dstack([_crop(), np.full((60, 60), 200, np.uint8)]))
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb.save(folder / "lossy.webp", quality=80)  # simple format: VP8 first
    rgb.save(folder / "light.webp", quality=95)
    rgba.save(folder / "alpha.webp", quality=80)  # extended: VP8X, ALPH, then VP8
    rgb.save(folder / "icc.webp", quality=80, icc_profile=profile)  # VP8X, ICCP, VP8
    rgb.save(folder / "lossless.webp", lossless=True)  # VP8L
    rgba.save(folder / "lossless_alpha.webp", lossless=True)  # VP8X, VP8L
    rgb.save(folder / "phone.heic", quality=80)
    rgb.save(folder / "web.avif", quality=60)


def test_lossy_formats_are_told_from_their_first_bytes(tmp_path):
    _lossy_files(tmp_path)
    PILImage.fromarray(_crop()).save(tmp_path / "a.jpg", quality=60)
    PILImage.fromarray(_crop()).save(tmp_path / "a.png")
    (tmp_path / "cut.webp").write_bytes((tmp_path / "icc.webp").read_bytes()[:40])
    (tmp_path / "text.heic").write_text("not an image")
    got = {p.name: lossy_format_of(p) for p in sorted(tmp_path.iterdir())}
    assert got == {"a.jpg": None, "a.png": None, "alpha.webp": "WebP", "cut.webp": None,
                   "light.webp": "WebP",
                   "icc.webp": "WebP", "lossless.webp": None, "lossless_alpha.webp": None,
                   "lossy.webp": "WebP", "phone.heic": "HEIC", "text.heic": None,
                   "web.avif": "AVIF"}
    assert lossy_format_of(tmp_path / "missing.webp") is None  # the reader says why


def test_the_policy_photo_for_jpeg_clean_for_lossless():
    assert W.bundled_kind("auto", None, 2) == ("clean", "auto: lossless input")
    assert W.bundled_kind("auto", 85, 2) == ("photo", "auto: JPEG q~85")
    assert W.bundled_kind("auto", 80, 2) == ("photo-low", "auto: JPEG q~80; strongly compressed")
    assert W.bundled_kind("auto", 75, 2) == ("photo-low", "auto: JPEG q~75; strongly compressed")
    assert W.bundled_kind("auto", W.PHOTO_MAX_QUALITY, 2)[0] == "photo"
    assert W.bundled_kind("auto", W.PHOTO_MAX_QUALITY + 1, 2)[0] == "clean"
    assert W.bundled_kind("auto", W.PHOTO_LOW_MAX_QUALITY, 2)[0] == "photo-low"
    assert W.bundled_kind("auto", W.PHOTO_LOW_MAX_QUALITY + 1, 2)[0] == "photo"
    assert W.bundled_kind("auto", 1, 2)[0] == "photo-low"
    # measured crossovers: photo wins at q90, clean at q95; photo-low at q80, photo at q85
    # (wdsr_cli/assets/weights/MODEL_CARD.md "Photo against clean weights")
    assert W.bundled_kind("auto", 90, 2)[0] == "photo"
    assert W.bundled_kind("auto", 95, 2)[0] == "clean"
    assert W.bundled_kind("clean", 50, 2) == ("clean", "--weights clean")
    assert W.bundled_kind("photo", None, 2) == ("photo", "--weights photo")
    assert W.bundled_kind("photo", 50, 2) == ("photo", "--weights photo")
    assert W.bundled_kind("photo-low", None, 2) == ("photo-low", "--weights photo-low")
    assert W.bundled_kind("auto", 75, 8)[0] == "clean"  # no x8 photo weights bundled
    # lossy, no quality read: WebP blocks as JPEG does; HEIC and AVIF are read as lossless
    # inputs are (weights.py, above WEBP_PHOTO_MAX_QUALITY, has the measurements)
    assert W.bundled_kind("auto", None, 2, lossy="WebP") == ("photo", "auto: lossy WebP")
    top = W.WEBP_PHOTO_MAX_QUALITY
    assert W.bundled_kind("auto", None, 2, lossy="WebP", lossy_quality=top) == \
        ("photo", f"auto: WebP q~{top}")
    assert W.bundled_kind("auto", None, 2, lossy="WebP", lossy_quality=top + 1) == \
        ("clean", f"auto: WebP q~{top + 1}; lightly compressed")
    # measured: photo wins at q75 (by 0.21 dB at x2 and x4), clean at q90 (by 0.12)
    assert W.bundled_kind("auto", None, 2, lossy="WebP", lossy_quality=75)[0] == "photo"
    assert W.bundled_kind("auto", None, 2, lossy="WebP", lossy_quality=90)[0] == "clean"
    assert W.bundled_kind("auto", None, 2, lossy="HEIC") == ("clean", "auto: HEIC input")
    from wdsr_cli.core.inference.noise import NoiseReading

    noisy = NoiseReading(9.0, 9.0, 9.0, 9.0)
    assert W.bundled_kind("auto", None, 2, noisy, lossy="AVIF")[1].startswith(
        "auto: noisy AVIF input; noise ~")
    # an AVIF by its quality (measured: photo wins at q65, clean at q70; photo-low at q50)
    top, low = W.AVIF_PHOTO_MAX_QUALITY, W.AVIF_PHOTO_LOW_MAX_QUALITY
    assert (top, low) == (65, 50)
    assert W.bundled_kind("auto", None, 2, lossy="AVIF", lossy_quality=top) == \
        ("photo", f"auto: AVIF q~{top}")
    assert W.bundled_kind("auto", None, 2, lossy="AVIF", lossy_quality=top + 1) == \
        ("clean", f"auto: AVIF q~{top + 1}")
    assert W.bundled_kind("auto", None, 2, lossy="AVIF", lossy_quality=low) == \
        ("photo-low", f"auto: AVIF q~{low}; strongly compressed")
    assert W.bundled_kind("auto", None, 2, lossy="AVIF", lossy_quality=low + 1)[0] == "photo"
    assert W.bundled_kind("auto", None, 2, lossy="AVIF") == ("clean", "auto: AVIF input")
    assert W.bundled_kind("auto", None, 2, noisy, lossy="AVIF", lossy_quality=90)[:1] == \
        ("photo",)  # noisy, lightly compressed: photo, never photo-low
    assert W.bundled_kind("auto", None, 8, lossy="AVIF", lossy_quality=40)[0] == "clean"
    assert W.bundled_kind("auto", None, 2, noisy, lossy="WebP", lossy_quality=90)[1] \
        .startswith("auto: noisy WebP q~90; noise ~9.0 colour")
    # noise seen on the image halved only: enough in a lossy input (JPEG, HEIC, AVIF), whose
    # codec removed the finest of it; not in a lossless one (weights.py, noise.py)
    halved = NoiseReading(0.0, 0.5, 3.0, 3.0)
    for lossy in ("HEIC", "AVIF"):
        assert W.bundled_kind("auto", None, 2, halved, lossy=lossy) == (
            "photo", f"auto: noisy {lossy} input; noise ~0.0 colour, ~0.5 brightness, "
            "~3.0 halved")
    assert W.bundled_kind("auto", 95, 2, halved)[0] == "photo"
    assert W.bundled_kind("auto", None, 2, halved) == (
        "clean", "auto: lossless input; noise ~0.0 colour, ~0.5 brightness")
    assert W.bundled_kind("auto", None, 8, lossy="WebP")[0] == "clean"
    assert W.bundled_kind("clean", None, 2, lossy="WebP") == ("clean", "--weights clean")
    with pytest.raises(WdsrError, match="unknown --weights"):
        W.bundled_kind("sharp", None, 2)


@pytest.mark.parametrize("kind, stem", [("photo", "photo_"), ("photo-low", "photo_low_")])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_photo_weights_are_bundled_and_resolved(scale, kind, stem):
    path = bundled_checkpoint(scale, kind)
    assert path is not None and path.name == f"wdsr_{stem}x{scale}.ckpt"
    w = W.resolve(scale=scale, bundled=kind)
    assert (w.path, w.bundled, w.why) == (path, kind, f"bundled {kind} weights")
    assert W.resolve(scale=scale).bundled == "clean"
    assert W.resolve("bundled", scale=scale, bundled=kind).path == path


def test_without_photo_low_weights_auto_gives_a_heavy_jpeg_the_photo_ones(monkeypatch):
    from wdsr_cli.core import checkpoints

    real = checkpoints.bundled_checkpoint
    monkeypatch.setattr(checkpoints, "bundled_checkpoint",
                        lambda scale, kind="clean": None if kind == "photo-low" else
                        real(scale, kind))
    assert W.bundled_kind("auto", 50, 2) == ("photo", "auto: JPEG q~50")
    assert W.bundled_kind("auto", 50, None)[0] == "photo-low"  # no scale: nothing to look up


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    d = tmp_path_factory.mktemp("mixed")
    PILImage.fromarray(_crop("dogs.png")).save(d / "a.png")
    PILImage.fromarray(_crop("mountains.png")).save(d / "b.jpg", quality=70)
    PILImage.fromarray(_crop("brushes.png")).save(d / "c.jpg", quality=99)
    PILImage.fromarray(_crop("dogs.png")).save(d / "d.jpg", quality=85)
    rng = np.random.default_rng(0)
    noisy = _crop("coffee.png", 120) + rng.standard_normal((120, 120, 3)) * 4
    PILImage.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8)).save(d / "e.png")
    gray = _crop("dandelions.png", 120) + rng.standard_normal((120, 120, 1)) * 4
    gray = np.clip(np.round(gray), 0, 255).astype(np.uint8)
    PILImage.fromarray(gray).save(d / "f.png")
    PILImage.fromarray(gray).save(d / "g.jpg", quality=98)
    return d


def _rows(res) -> dict:
    assert res.returncode == 0, res.stderr
    return {r["input"].rsplit("/", 1)[-1]: r for r in json.loads(res.stdout)["images"]}


def test_jpegs_above_quality_92_are_read_for_noise(tmp_path):
    # the same gray noise (sigma 4) at q95 and q93: read, and given the photo weights; at q92
    # the quality alone decides (the photo weights too), without a reading
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    clean = _crop("dandelions.png", 120)
    gray = np.clip(np.round(clean + rng.standard_normal((120, 120, 1)) * 4), 0, 255)
    PILImage.fromarray(gray.astype(np.uint8)).save(src / "noisy95.jpg", quality=95)
    PILImage.fromarray(gray.astype(np.uint8)).save(src / "noisy93.jpg", quality=93)
    PILImage.fromarray(gray.astype(np.uint8)).save(src / "noisy92.jpg", quality=92)
    PILImage.fromarray(clean).save(src / "clean95.jpg", quality=95)
    rows = _rows(run_wdsr("upscale", str(src), "-o", str(tmp_path / "out"), "--json", "-"))
    assert rows["noisy95.jpg"]["weights"] == "photo"
    assert rows["noisy95.jpg"]["weights_why"].startswith("auto: noisy JPEG q~95; noise ~")
    assert rows["clean95.jpg"]["weights"] == "clean"
    assert rows["clean95.jpg"]["weights_why"].startswith(
        "auto: JPEG q~95; nearly lossless, noise ~")
    assert rows["noisy93.jpg"]["weights"] == "photo"
    assert rows["noisy93.jpg"]["weights_why"].startswith("auto: noisy JPEG q~93; noise ~")
    assert (rows["noisy92.jpg"]["weights"], rows["noisy92.jpg"]["weights_why"]) == \
        ("photo", "auto: JPEG q~92")


def test_a_mixed_folder_gives_each_image_its_own_weights(mixed, tmp_path):
    res = run_wdsr("upscale", str(mixed), "-o", str(tmp_path / "auto"), "--json", "-",
                   env={"COLUMNS": "250"})
    rows = _rows(res)
    assert rows["a.png"]["weights"] == "clean"
    assert rows["a.png"]["weights_why"].startswith("auto: lossless input; noise ~0.")
    assert rows["e.png"]["weights"] == "photo"  # lossless, but with colour noise of sigma 4
    assert rows["e.png"]["weights_why"].startswith("auto: noisy lossless input; noise ~")
    assert rows["f.png"]["weights"] == "photo"  # gray noise of sigma 4: seen in the brightness
    assert rows["f.png"]["weights_why"].endswith("brightness")
    assert rows["g.jpg"]["weights"] == "photo"  # the same at JPEG q98: read too
    assert rows["g.jpg"]["weights_why"].startswith("auto: noisy JPEG q~98; noise ~")
    assert rows["c.jpg"]["weights_why"].startswith("auto: JPEG q~99; nearly lossless, noise ~")
    assert (rows["b.jpg"]["weights"], rows["b.jpg"]["weights_why"]) == \
        ("photo-low", "auto: JPEG q~70; strongly compressed")
    assert rows["c.jpg"]["weights"] == "clean"  # q99: nearly lossless
    assert (rows["d.jpg"]["weights"], rows["d.jpg"]["weights_why"]) == \
        ("photo", "auto: JPEG q~85")
    assert "photo-low (JPEG q~70" in res.stderr  # the table says it too
    assert sorted(json.loads(res.stdout)["weights"]) == ["clean", "photo", "photo-low"]
    # each row names the file that ran; the summary names none (several ran)
    assert rows["a.png"]["checkpoint"].endswith("wdsr_x2.ckpt")
    assert rows["b.jpg"]["checkpoint"].endswith("wdsr_photo_low_x2.ckpt")
    assert rows["d.jpg"]["checkpoint"].endswith("wdsr_photo_x2.ckpt")
    assert json.loads(res.stdout)["checkpoint"] is None
    # each model loaded once and named once
    for name in ("wdsr_photo_x2.ckpt", "wdsr_photo_low_x2.ckpt", "wdsr_x2.ckpt"):
        assert res.stderr.count(name) == 1, name
    # the outputs are those of the named weights
    for choice, stem in (("photo-low", "photo_low_"), ("photo", "photo_"), ("clean", "")):
        one = run_wdsr("upscale", str(mixed / "b.jpg"), "-o", str(tmp_path / f"{choice}.png"),
                       "--weights", choice, "--json", "-")
        assert one.returncode == 0, one.stderr
        # one image: the summary's checkpoint is the one that ran, not the clean default
        assert json.loads(one.stdout)["checkpoint"].endswith(f"wdsr_{stem}x2.ckpt"), choice
    auto_b = read_rgb_uint8(tmp_path / "auto" / "b_x2.png")
    assert np.array_equal(auto_b, read_rgb_uint8(tmp_path / "photo-low.png"))
    assert not np.array_equal(auto_b, read_rgb_uint8(tmp_path / "photo.png"))
    assert not np.array_equal(auto_b, read_rgb_uint8(tmp_path / "clean.png"))


def test_weights_flag_bad_values_are_one_line(mixed, tmp_path):
    ckpt = bundled_checkpoint(2)
    for args, words in ((["--weights", "sharp"], "unknown --weights"),
                        (["--weights", "photo", "--checkpoint", str(ckpt)], "bundled weights")):
        line = one_line_error(run_wdsr("upscale", str(mixed / "a.png"), "-o",
                                       str(tmp_path / "x.png"), *args))
        assert words in line
    assert not (tmp_path / "x.png").exists()


def test_evaluate_degrade_with_jpeg_runs_the_photo_weights(mixed, tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    PILImage.fromarray(_crop("dogs.png", 240)).save(hr / "a.png")
    runs = str(tmp_path / "no-runs")
    out = {}
    for key, args in (("jpeg", ["--degrade", "jpeg:60"]), ("noise", ["--degrade", "noise:4"]),
                      ("graynoise", ["--degrade", "graynoise:4"]), ("none", []),
                      ("nearly", ["--degrade", "graynoise:4,jpeg:98"]),
                      ("q95", ["--degrade", "graynoise:4,jpeg:95"]),
                      # a 120 x 120 LR of fur: at q93 sigma 4 reads as texture, 5 does not
                      ("q93", ["--degrade", "graynoise:5,jpeg:93"]),
                      ("light", ["--degrade", "noise:2,jpeg:85"]),
                      ("forced", ["--degrade", "jpeg:60", "--weights", "clean"])):
        res = run_wdsr("evaluate", "--scale", "2", "--hr", str(hr), "--json", "-",
                       "--runs-dir", runs, *args)
        assert res.returncode == 0, res.stderr
        out[key] = json.loads(res.stdout)
    assert out["jpeg"]["weights"] == "photo-low"
    assert out["jpeg"]["checkpoint"].endswith("wdsr_photo_low_x2.ckpt")
    assert out["jpeg"]["weights_why"] == "auto: JPEG q~60; strongly compressed"
    assert out["light"]["weights"] == "photo"
    assert out["light"]["checkpoint"].endswith("wdsr_photo_x2.ckpt")
    assert out["light"]["weights_why"] == "auto: JPEG q~85"
    # a lossless LR: its noise decides, read as upscale reads a PNG
    assert out["noise"]["weights"] == "photo"
    assert out["noise"]["weights_why"].startswith("auto: noisy lossless input; noise ~")
    assert out["graynoise"]["weights"] == "photo"  # the same in every channel: the brightness
    assert out["nearly"]["weights"] == "photo"  # a nearly lossless JPEG is read too
    assert out["nearly"]["weights_why"].startswith("auto: noisy JPEG q~98; noise ~")
    assert out["q95"]["weights_why"].startswith("auto: noisy JPEG q~95; noise ~")  # read
    assert out["q93"]["weights_why"].startswith("auto: noisy JPEG q~93; noise ~")
    assert out["none"]["weights"] == "clean"
    assert out["none"]["weights_why"].startswith("auto: lossless input; noise ~0.")
    assert out["forced"]["weights"] == "clean" and out["forced"]["weights_why"] == \
        "--weights clean"
    assert out["jpeg"]["mean"]["psnr"] != out["forced"]["mean"]["psnr"]


# ----------------------------------------- each image's noise read once, models loaded lazily

class _Nearest:
    """A stand-in predictor (x2 nearest neighbour) that names the weights it stands for."""

    scale, receptive_radius, window = 2, 1, (8, 8)
    precision_check, precision, precision_why = None, "fp32", "stand-in"

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.backend = type("Backend", (), {"name": f"stand-in for {kind}"})()

    def predict(self, rgb, on_tile=None):
        return np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)

    predict_uint8 = predict

    def windows_for(self, height: int, width: int) -> int:
        return 1


def _run(folder, out, monkeypatch):
    """plan + run of `wdsr upscale FOLDER -o OUT` in-process: (summary, kinds loaded in
    order, files decoded in order)."""
    from wdsr_cli.core import config as C
    from wdsr_cli.core.data import images
    from wdsr_cli.core.inference import upscale as U

    decoded, loaded = [], []
    read = images.read_image

    def counted(path, *args, **kwargs):
        decoded.append(Path(path).name)
        return read(path, *args, **kwargs)

    monkeypatch.setattr(images, "read_image", counted)
    plan = U.plan_upscale(U.UpscaleRequest([str(folder)], str(out)), C.Config().runtime)

    def load(kind):
        loaded.append(kind)
        return _Nearest(kind)

    return U.run_upscale(plan, load), loaded, decoded


def test_each_input_is_decoded_once_and_each_model_loads_when_first_needed(mixed, tmp_path,
                                                                            monkeypatch):
    summary, loaded, decoded = _run(mixed, tmp_path / "out", monkeypatch)
    rows = {Path(r["input"]).name: r for r in summary.images}
    # the noise of a.png (lossless), c.jpg (q99) and e/f.png, g.jpg was read from the one decode
    # that feeds the network: no file is decoded twice
    assert sorted(decoded) == sorted(rows) == sorted(p.name for p in mixed.iterdir())
    assert [rows[n]["weights"] for n in sorted(rows)] == \
        ["clean", "photo-low", "clean", "photo", "photo", "photo", "photo"]
    assert loaded == ["clean", "photo-low", "photo"]  # in order of first use, each once
    assert summary.engine["backend"] == "stand-in for clean"  # the first that ran
    assert summary.to_json()["weights"] == ["clean", "photo", "photo-low"]


def test_lossy_webp_runs_the_photo_weights_and_the_lightly_compressed_are_read_for_noise(
        tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    _lossy_files(src)
    import pillow_heif  # noqa: F401 - registered by _lossy_files

    # AV1 smooths colour noise away (4:2:0): this one is seen in the brightness
    noisy = _crop("coffee.png", 120) + np.random.default_rng(1).standard_normal((120, 120, 3)) * 12
    PILImage.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8)).save(
        src / "noisy.avif", quality=95)
    PILImage.fromarray(_crop()).save(src / "site.avif", quality=80)
    # gray noise AV1 smoothed at full size, seen on the image halved (as a JPEG's is)
    grain = _crop("clock.png", 240) + np.random.default_rng(1).standard_normal((240, 240, 1)) * 4
    grain = PILImage.fromarray(np.clip(np.round(grain), 0, 255).astype(np.uint8))
    grain.save(src / "grain.avif", quality=75)
    grain.save(src / "film.webp", quality=90)  # lightly compressed, but noisy
    PILImage.fromarray(_crop()).save(src / "small.avif", quality=40)
    summary, loaded, decoded = _run(src, tmp_path / "out", monkeypatch)
    rows = {Path(r["input"]).name: r for r in summary.images}
    assert sorted(decoded) == sorted(rows) == sorted(p.name for p in src.iterdir())
    why = {name: (r["weights"], r["weights_why"].split("; noise")[0].split(", noise")[0])
           for name, r in rows.items()}
    # a WebP's quality is read to within one step of libwebp's quantizer table: on this
    # 60-pixel crop q80 reads 81 and q95 reads 96
    assert why == {
        "lossy.webp": ("photo", "auto: WebP q~81"), "alpha.webp": ("photo", "auto: WebP q~81"),
        "icc.webp": ("photo", "auto: WebP q~81"),
        "light.webp": ("clean", "auto: WebP q~96; lightly compressed"),
        "lossless.webp": ("clean", "auto: lossless input"),
        "lossless_alpha.webp": ("clean", "auto: lossless input"),
        "phone.heic": ("clean", "auto: HEIC input"),
        # an AVIF's quality is read from its AV1 quantizer: q60 and q61 share one (61), as
        # q80 and q81 do, and q40 and q41; the photo weights up to q65, photo-low up to q50
        # (weights.AVIF_PHOTO_MAX_QUALITY, AVIF_PHOTO_LOW_MAX_QUALITY)
        "web.avif": ("photo", "auto: AVIF q~61"), "site.avif": ("clean", "auto: AVIF q~81"),
        "small.avif": ("photo-low", "auto: AVIF q~41; strongly compressed"),
        "noisy.avif": ("photo", "auto: noisy AVIF q~95"),
        "grain.avif": ("photo", "auto: noisy AVIF q~75"),
        "film.webp": ("photo", "auto: noisy WebP q~90")}
    assert rows["grain.avif"]["weights_why"].endswith(" halved")


def test_a_folder_of_clean_pngs_loads_the_clean_weights_alone(mixed, tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    for name in ("a.png", "c.jpg"):  # lossless, and nearly lossless: both read as quiet
        (tmp_path / "in" / name).write_bytes((mixed / name).read_bytes())
    summary, loaded, decoded = _run(tmp_path / "in", tmp_path / "out", monkeypatch)
    assert loaded == ["clean"] and len(decoded) == 2
    assert [r["weights"] for r in summary.images] == ["clean", "clean"]


def test_a_model_that_fails_to_load_fails_its_images_once_and_the_others_go_on(
        mixed, tmp_path, monkeypatch):
    from wdsr_cli.core import config as C
    from wdsr_cli.core.errors import WdsrError
    from wdsr_cli.core.inference import upscale as U

    plan = U.plan_upscale(U.UpscaleRequest([str(mixed)], str(tmp_path / "out")),
                          C.Config().runtime)
    loaded = []

    def load(kind):
        loaded.append(kind)
        if kind == "photo":
            raise WdsrError("the photo weights are damaged", "reinstall wdsr")
        return _Nearest(kind)

    summary = U.run_upscale(plan, load)
    assert loaded == ["clean", "photo-low", "photo"]  # the damaged one was tried once
    assert [Path(f["input"]).name for f in summary.failures] == ["d.jpg", "e.png", "f.png",
                                                                 "g.jpg"]
    assert {f["error"] for f in summary.failures} == \
        {"the photo weights are damaged - reinstall wdsr"}
    # the images of the other weights were written, after the failure as before it
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["a_x2.png", "b_x2.png", "c_x2.png"]
    with pytest.raises(WdsrError, match="4 of 7 images failed"):
        summary.check()


def test_each_row_counts_its_decode_also_when_its_model_loads_after_it(mixed, tmp_path,
                                                                       monkeypatch):
    from wdsr_cli.core.inference import upscale as U

    decode = U._decode
    monkeypatch.setattr(U, "_decode", lambda source: (decode(source)[0], 100.0))  # a slow disk
    summary, loaded, _ = _run(mixed, tmp_path / "out", monkeypatch)
    assert len(loaded) == 3  # three images were read before their model was loaded
    assert all(r["seconds"] >= 100.0 for r in summary.images)

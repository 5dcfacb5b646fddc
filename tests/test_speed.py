"""The speed users get by default: the precision chosen per machine and its tolerance on the
shipped weights, `bench` timing what `animate` runs, and its end-to-end figure.
"""
import json

import numpy as np
import pytest
import torch

from conftest import EXAMPLE, run_cli
from conftest_addon import addon, fake_engine, generate, prefs_reset, private_tmp, scene10, set_prefs  # noqa: F401
from psc_engine import Pipeline, PSCError
from psc_engine import precision as prec
from psc_engine.evaluation import bench
from psc_engine.evaluation.bench import example_inputs
from psc_engine.formats.test_layout import load_test_layout
from psc_engine.pipeline import CHECKOUT_WEIGHTS, load_chain

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_picks_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(prec, "native_cpu_bfloat16", lambda: (True, "AVX512-BF16"))
    assert prec.choose("auto", CPU) == ("bfloat16", "auto: this CPU has AVX512-BF16")
    monkeypatch.setattr(prec, "native_cpu_bfloat16", lambda: (False, "no AVX512-BF16 or AMX"))
    assert prec.choose("auto", CPU)[0] == "float32"
    assert prec.choose("float32", CPU) == ("float32", "asked for")
    assert prec.choose("bfloat16", CPU)[0] == "bfloat16"
    assert prec.choose("auto", CUDA)[0] == "float16" and prec.choose("bfloat16", CUDA)[0] == "bfloat16"
    with pytest.raises(PSCError, match="float16 runs on CUDA only"):
        prec.choose("float16", CPU)
    with pytest.raises(PSCError, match="unknown precision 'half'"):
        prec.choose("half", CPU)


def test_pipeline_precision_and_the_older_half_flag(tiny_weights):
    auto = Pipeline.from_pretrained(tiny_weights, device="cpu")
    assert auto.precision == prec.choose("auto", CPU)[0]
    f32 = Pipeline.from_pretrained(tiny_weights, device="cpu", precision="float32")
    assert f32.precision == "float32" and next(f32.ct.parameters()).dtype == torch.float32
    b16 = Pipeline.from_pretrained(tiny_weights, device="cpu", half=True)
    assert b16.precision == "bfloat16" and next(b16.ct.parameters()).dtype == torch.bfloat16
    assert Pipeline.from_pretrained(tiny_weights, device="cpu", half=False).precision == "float32"


def test_the_tolerance_check_rejects_a_visible_difference():
    """compare() is what the shipped-weights test and `bench` judge by: it must say no to a frame
    one grey level off everywhere, or to one pixel in 500 of the parsing changed."""
    from psc_engine.pipeline import Frames

    rng = np.random.default_rng(0)
    ref = Frames(rng.integers(0, 250, (2, 256, 256, 3), dtype=np.uint8), rng.integers(0, 7, (2, 256, 256), dtype=np.uint8),
                 np.zeros((2, 18, 2), np.float32))
    assert prec.compare(ref, ref) == {"mean_abs_diff": 0.0, "max_abs_diff": 0, "parsing_agreement": 1.0, "within": True}
    brighter = Frames(ref.images + 1, ref.parsings, ref.poses)
    assert not prec.compare(brighter, ref)["within"]
    flipped = ref.parsings.copy()
    flipped.reshape(-1)[::500] = (flipped.reshape(-1)[::500] + 1) % 7
    assert not prec.compare(Frames(ref.images, flipped, ref.poses), ref)["within"]


def test_shipped_weights_in_the_default_precision_stay_within_tolerance():
    """The shipped chain in this machine's default precision against float32, on the bundled
    example's two real photos, PM-Net poses from P0 to P1 (16 frames each): mean abs pixel
    difference and AA class agreement within precision.TOLERANCE. On a CPU with native bfloat16
    (these machines) the default is bfloat16 and the frames do differ (measured: mean 0.08 of
    255, 99.97 % of parsing pixels equal; on 28 real photos at most 0.12 and 99.96 %)."""
    native, _ = prec.native_cpu_bfloat16()
    fast = Pipeline.from_pretrained(CHECKOUT_WEIGHTS, device="cpu")
    assert fast.precision == ("bfloat16" if native else "float32")
    ref = Pipeline.from_pretrained(CHECKOUT_WEIGHTS, device="cpu", precision="float32")
    for s in load_test_layout(EXAMPLE):
        poses = ref.interpolate(s.pose0, s.pose1, np.linspace(0, 1, 16))
        diff = prec.compare(fast.transfer(s.image, s.parsing, s.pose0, poses, batch_size=4),
                            ref.transfer(s.image, s.parsing, s.pose0, poses, batch_size=4))
        assert diff["within"], (s.stem, diff, prec.TOLERANCE)
        if fast.precision != "float32":
            assert diff["mean_abs_diff"] > 0  # the reduced precision did run


def test_compile_auto_only_for_long_clips(tiny_weights, monkeypatch):
    """compile="auto" (the default) compiles only for a clip of AUTO_COMPILE_FRAMES or more (20000
    on the CPU, where compiling repays its start-up), and says so once; torch.compile is
    stood in for here (a real compile takes a minute)."""
    import psc_engine.pipeline as pipeline

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiled.append(fn) or fn)
    monkeypatch.setattr(pipeline, "AUTO_COMPILE_FRAMES", {"cpu": 3})
    pipe = Pipeline.from_pretrained(tiny_weights, device="cpu")
    assert pipe.compile == "auto"
    image, parsing, pose, targets = example_inputs(3)
    said = []
    pipe.transfer(image, parsing, pose, targets[:2])
    assert not pipe.compiled and not compiled
    list(pipe.stream(image, parsing, pose, targets, batch_size=2, on_warning=said.append))
    assert pipe.compiled and len(compiled) == 2 and said == [said[0]] and "3-frame clip" in said[0]
    assert Pipeline.from_pretrained(tiny_weights, device="cpu", compile=False).compile is False


def test_fast_png_decodes_to_the_same_pixels(tmp_path):
    """encode_png (the frames' writer): Pillow reads back exactly the pixels written, for noise,
    a smooth frame and odd sizes, and the file is no bigger than Pillow's own at level 1 (+5 %)."""
    import io

    from PIL import Image

    from psc_engine.formats.images import encode_png, write_png

    rng = np.random.default_rng(0)
    image = bench.photo_inputs(1)[0]
    for array in (image, rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), rng.integers(0, 256, (1, 7, 3), dtype=np.uint8),
                  np.ascontiguousarray(image[::-1, :100])):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(array)))), array)
    pillow = io.BytesIO()
    Image.fromarray(image).save(pillow, format="PNG", compress_level=1)
    assert len(encode_png(image)) <= 1.05 * len(pillow.getvalue())
    write_png(tmp_path / "p.png", image[..., 0] % 7)  # a parsing: the id in all three channels
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p.png"))[..., 2], image[..., 0] % 7)


def test_end_to_end_is_never_below_compute_alone(tiny_weights):
    """bench's end-to-end figure (frames written as PNGs) against the compute of the same run
    (when its last chunk was computed): never below it, in every round, by construction; and the
    compute-alone rounds beside it do the full compute (they take at least the time the batched
    figure says those frames take, within drift)."""
    nets, cards = load_chain(tiny_weights)
    r = bench.run(nets, cards, "cpu", batch_sizes=(4,), seed_frames=2, min_seconds=0.2, end_to_end_frames=24,
                  repeats=3)
    rounds = r["end_to_end_rounds"]
    assert r["end_to_end_frames"] == 24 and len(rounds["compute"]) == len(rounds["compute_alone"]) == 3
    assert all(e >= c > 0 for e, c in zip(rounds["end_to_end"], rounds["compute"]))  # by construction, every round
    assert r["end_to_end_seconds"] >= r["compute_seconds"] > 0 and r["end_to_end_over_compute"] >= 1
    assert r["compute_alone_seconds"] >= 0.5 * 24 / r["fps_batch4"]


def test_bench_times_the_shipped_weights_and_says_so():
    """By default `bench` times what animate runs: the shipped weights at their own size (128 for
    AA and CT) in the default precision; progress lines (batch, round) go to stderr."""
    r = run_cli("bench", "--device", "cpu", "--batch_sizes", "4", "--seed_frames", "2", "--seconds", "0.1",
                "--repeats", "2", "--end_to_end", "8")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.splitlines()[0])
    assert result["weights"].startswith("shipped weights") and result["size"] == 128
    assert result["precision"] == prec.choose("auto", CPU)[0] and result["within_tolerance"]
    assert len(result["rounds"]["fps_batch4"]) == 2 and result["fps_batch4"] > 0
    assert "round 1/2, batch4" in r.stderr and "round 2/2, seed loop" in r.stderr
    assert "end to end round 2/2" in r.stderr
    assert "shipped weights" in r.stdout and "128x128" in r.stdout


def test_bench_random_float32():
    r = run_cli("bench", "--device", "cpu", "--random", "--base", "4", "--precision", "float32", "--batch_sizes", "2",
                "--seed_frames", "2", "--seconds", "0.1", "--repeats", "1", "--end_to_end", "0")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.splitlines()[0])
    assert result["weights"].startswith("random base-4") and result["size"] == 256
    assert result["precision"] == "float32" and result["max_abs_diff_vs_seed_loop"] <= 2
    assert "end_to_end_seconds" not in result


@pytest.mark.parametrize("precision", [None, "float32"])
def test_animate_reports_its_precision(tiny_weights, tmp_path, precision):
    from psc_engine.formats.images import write_png
    from psc_engine.formats.poses import write_pose_csv

    image, parsing, pose, targets = example_inputs(2)
    write_png(tmp_path / "i.png", image)
    write_png(tmp_path / "s.png", parsing)
    write_pose_csv(tmp_path / "p.csv", pose[None])
    write_pose_csv(tmp_path / "t.csv", targets)
    args = ["animate", "--image", tmp_path / "i.png", "--parsing", tmp_path / "s.png", "--pose", tmp_path / "p.csv",
            "--poses", tmp_path / "t.csv", "--weights", tiny_weights, "--device", "cpu"]
    args += ["--precision", precision] if precision else []
    expected = precision or prec.choose("auto", CPU)[0]
    r = run_cli(*args, "--output_dir", tmp_path / "json", "--progress", "json")
    assert r.returncode == 0, r.stderr
    start = json.loads(r.stdout.splitlines()[0])
    assert start["event"] == "start" and start["precision"] == expected and start["device"] == "cpu"
    r = run_cli(*args, "--output_dir", tmp_path / "text")
    assert r.returncode == 0, r.stderr
    first = next(line for line in r.stderr.splitlines() if not line.startswith("psc: warning"))
    assert first.startswith(f"psc: AA and CT in {expected} on cpu (")


@pytest.mark.parametrize("choice", ["auto", "float32"])
def test_addon_passes_its_precision_preference(scene10, fake_engine, tmp_path, monkeypatch, choice):
    """The add-on's default run asks the engine for its default (fastest) precision; the
    preference float32 forces float32."""
    log = tmp_path / "argv.json"
    monkeypatch.setenv("PSC_FAKE_LOG", str(log))
    set_prefs(precision=choice)
    try:
        assert generate()[0] == {"FINISHED"}
    finally:
        set_prefs(precision="auto")
    argv = json.loads(log.read_text())
    assert argv[argv.index("--precision") + 1] == choice

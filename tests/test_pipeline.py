"""The engine API: loading, PM interpolation, batched AA -> CT transfer, weights checks."""
import json
import shutil

import numpy as np
import pytest

from psc_engine import Pipeline, PSCError
from psc_engine.evaluation.bench import example_inputs
from psc_engine.weights import load_weights


@pytest.fixture(scope="module")
def pipe(tiny_weights):
    return Pipeline.from_pretrained(tiny_weights, device="cpu")


def test_from_pretrained_reads_cards(pipe):
    assert pipe.device.type == "cpu"
    assert pipe.placeholder
    assert set(pipe.cards) == {"pm", "aa", "ct"}


def test_interpolate_shapes(pipe):
    _, _, pose, targets = example_inputs(4)
    out = pipe.interpolate(pose, targets[2], [0.0, 0.5, 1.0])
    assert out.shape == (3, 18, 2) and out.dtype == np.float32


def test_transfer_shapes_and_batching(pipe):
    image, parsing, pose, targets = example_inputs(5)
    a = pipe.transfer(image, parsing, pose, targets, batch_size=2)
    assert a.images.shape == (5, 256, 256, 3) and a.images.dtype == np.uint8
    assert a.parsings.shape == (5, 256, 256) and a.parsings.dtype == np.uint8 and a.parsings.max() < 7
    b = pipe.transfer(image, parsing, pose, targets, batch_size=5)
    # Batch size changes only float rounding order, never the frame.
    assert np.abs(a.images.astype(int) - b.images.astype(int)).max() <= 1
    assert (a.parsings != b.parsings).mean() < 1e-3


def test_reference_encoded_once_per_clip(pipe, monkeypatch):
    calls = []
    original = pipe.ct.encode_source
    monkeypatch.setattr(pipe.ct, "encode_source", lambda *a: calls.append(1) or original(*a))
    image, parsing, pose, targets = example_inputs(7)
    chunks = list(pipe.stream(image, parsing, pose, targets, batch_size=3))
    assert [len(c) for c in chunks] == [3, 3, 1] and [c.start for c in chunks] == [0, 3, 6]
    assert len(calls) == 1


def test_missing_joints_accept_nan_and_minus_one(pipe):
    image, parsing, pose, targets = example_inputs(2)
    t_nan = targets.copy()
    t_nan[:, 0] = np.nan
    t_neg = targets.copy()
    t_neg[:, 0] = -1
    a = pipe.transfer(image, parsing, pose, t_nan)
    b = pipe.transfer(image, parsing, pose, t_neg)
    np.testing.assert_array_equal(a.images, b.images)


def test_bad_inputs(pipe):
    image, parsing, pose, targets = example_inputs(2)
    with pytest.raises(PSCError, match="uint8"):
        pipe.transfer(image[:100], parsing, pose, targets)
    bad = parsing.copy()
    bad[0, 0] = 8
    with pytest.raises(PSCError, match="label 8"):
        pipe.transfer(image, bad, pose, targets)
    with pytest.raises(PSCError, match="18, 2"):
        pipe.transfer(image, parsing, pose[:17], targets)


def test_weights_hash_mismatch_and_wrong_net(tiny_weights, tmp_path):
    folder = tmp_path / "w"
    shutil.copytree(tiny_weights, folder)
    with open(folder / "aa.safetensors", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    with pytest.raises(PSCError, match="does not match aa.json"):
        load_weights(folder, "aa")
    shutil.copy(tiny_weights / "pm.safetensors", folder / "aa.safetensors")
    card = json.loads((tiny_weights / "aa.json").read_text())
    card["sha256"] = json.loads((tiny_weights / "pm.json").read_text())["sha256"]
    (folder / "aa.json").write_text(json.dumps(card))
    with pytest.raises(PSCError, match="do not fit a aa net"):
        load_weights(folder, "aa")
    (folder / "ct.safetensors").unlink()
    with pytest.raises(PSCError, match="weight file not found"):
        load_weights(folder, "ct")


def test_out_of_memory_falls_back_to_smaller_batches(pipe, monkeypatch):
    import torch

    image, parsing, pose, targets = example_inputs(7)
    expected = pipe.transfer(image, parsing, pose, targets, batch_size=2)
    real = pipe.render

    def fragile(reference, poses, *a):
        if len(poses) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(reference, poses, *a)

    monkeypatch.setattr(pipe, "render", fragile)
    said = []
    chunks = list(pipe.stream(image, parsing, pose, targets, batch_size=8, on_warning=said.append))
    assert [c.start for c in chunks] == [0, 2, 4, 6]
    assert said == ["out of memory at batch size 7; continuing with 4", "out of memory at batch size 4; continuing with 2"]
    got = np.concatenate([c.images for c in chunks])
    assert np.abs(got.astype(int) - expected.images.astype(int)).max() <= 1


def test_fast_path_matches_the_float32_reference(tiny_weights):
    """The batched, channels-last, cached-reference chain against a plain float32 NCHW one-frame
    forward of the same nets (the seed's way), both in float32. Stated tolerance: max abs pixel
    difference 2 (of 255)."""
    import torch
    import torch.nn.functional as F

    from psc_engine.formats.poses import pose_maps
    from psc_engine.weights import load_weights

    pipe = Pipeline.from_pretrained(tiny_weights, device="cpu", precision="float32")
    image, parsing, pose, targets = example_inputs(6)
    fast = pipe.transfer(image, parsing, pose, targets, batch_size=4)
    aa, ct = load_weights(tiny_weights, "aa")[0], load_weights(tiny_weights, "ct")[0]  # fresh NCHW copies
    img = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    src = F.one_hot(torch.from_numpy(parsing).long(), 7).permute(2, 0, 1)[None].float().contiguous()
    src_maps = pose_maps(pose[None])
    with torch.no_grad():
        for i, t in enumerate(targets):
            maps = pose_maps(t[None])
            logits = aa(src, src_maps, maps)
            labels = logits.argmax(1)
            out = ct(img, src, src_maps, logits.softmax(1), maps)["image"]  # CT reads AA's class probabilities
            ref = ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
            assert (labels[0].numpy() == fast.parsings[i]).mean() > 0.999
            assert np.abs(ref.astype(int) - fast.images[i].astype(int)).max() <= 2


def test_memory_is_flat_in_the_number_of_frames(tiny_weights, tmp_path):
    """Peak RSS of `animate` over 960 frames stays within 100 MiB of the same job over 80.

    Peak RSS is noisy in the first hundred frames while allocators warm up (460-520 MiB for
    20-160 frames, 515-535 for 160-640, one OpenMP thread), so the long job is long: keeping its
    880 extra frames, even as uint8, would add 165 MiB."""
    from psc_engine.formats.images import write_png
    from psc_engine.formats.poses import write_pose_csv

    image, parsing, pose, targets = example_inputs(960)
    write_png(tmp_path / "i.png", image)
    write_png(tmp_path / "s.png", parsing)
    write_pose_csv(tmp_path / "p.csv", pose[None])
    peaks = []
    for n in (80, 960):
        write_pose_csv(tmp_path / f"t{n}.csv", targets[:n])
        code = ("import resource, runpy, sys; sys.argv = ['psc'] + sys.argv[1:]; "
                "from psc_engine.cli import main; rc = main(); "
                "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
        import subprocess, sys
        r = subprocess.run([sys.executable, "-c", code, "animate", "--image", str(tmp_path / "i.png"), "--parsing",
                            str(tmp_path / "s.png"), "--pose", str(tmp_path / "p.csv"), "--poses", str(tmp_path / f"t{n}.csv"),
                            "--output_dir", str(tmp_path / f"o{n}"), "--weights", str(tiny_weights), "--batch_size", "8"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        peaks.append(int(r.stdout.split("RSS")[-1]) / 1024)
    assert len(list((tmp_path / "o960").glob("frame_*.png"))) == 960
    assert peaks[1] - peaks[0] < 100, peaks


def test_compile_failure_falls_back_to_eager(tiny_weights, monkeypatch):
    import torch

    def broken_compile(fn, **kw):
        def run(*a, **k):
            raise RuntimeError("inductor: no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    pipe = Pipeline.from_pretrained(tiny_weights, device="cpu", compile=True)
    image, parsing, pose, targets = example_inputs(2)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        frames = pipe.transfer(image, parsing, pose, targets)
    assert frames.images.shape == (2, 256, 256, 3) and not pipe.compiled


def test_compiled_pipeline_pads_the_last_batch_to_one_shape(tiny_weights, monkeypatch):
    """A compiled decoder recompiles for every new batch shape (a minute on a CPU): the last,
    shorter chunk is padded to the batch size and cut back, with the same frames."""
    import torch

    shapes = []

    def recording_compile(fn, **kw):
        def run(reference, maps, *rest):
            shapes.append(maps.shape[0])
            return fn(reference, maps, *rest)
        return run

    image, parsing, pose, targets = example_inputs(10)
    eager = Pipeline.from_pretrained(tiny_weights, device="cpu").transfer(image, parsing, pose, targets, batch_size=4)
    monkeypatch.setattr(torch, "compile", recording_compile)
    pipe = Pipeline.from_pretrained(tiny_weights, device="cpu", compile=True)
    chunks = list(pipe.stream(image, parsing, pose, targets, batch_size=4))
    assert [len(c.images) for c in chunks] == [4, 4, 2] and set(shapes) == {4}
    assert np.array_equal(np.concatenate([c.images for c in chunks]), eager.images)


def test_a_warp_aa_reads_the_reference_parsing_warped_onto_each_pose(tiny_weights, tmp_path):
    """Weights whose AA reads the warp input (warp=True): the chain warps the reference's parsing
    onto every target pose and gives AA's frames exactly as a one-frame forward does."""
    import torch

    from psc_engine.formats.poses import pose_maps
    from psc_engine.nets.aa import AANet
    from psc_engine.nets.warp import warped_onehot
    from psc_engine.weights import save_weights

    for name in ("pm", "ct"):
        for ext in ("json", "safetensors"):
            shutil.copy(tiny_weights / f"{name}.{ext}", tmp_path / f"{name}.{ext}")
    torch.manual_seed(1)
    aa = AANet(base=4, warp=True)
    with torch.no_grad():
        aa.pose_encoder.stem[0].weight[:, 18:] *= 20  # the warp input weighs in
    save_weights(aa, "aa", tmp_path, placeholder=True)
    pipe = Pipeline.from_pretrained(tmp_path, device="cpu", precision="float32")
    image, parsing, pose, targets = example_inputs(3)
    frames = pipe.transfer(image, parsing, pose, targets, batch_size=2)
    aa = load_weights(tmp_path, "aa")[0]
    src = torch.nn.functional.one_hot(torch.from_numpy(parsing).long(), 7).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        for i, t in enumerate(targets):
            warped = warped_onehot(parsing, pose, t[None], 256)
            labels = aa(src, pose_maps(pose[None]), pose_maps(t[None]), warped).argmax(1)[0].numpy()
            assert (labels == frames.parsings[i]).mean() > 0.999
            zero = aa(src, pose_maps(pose[None]), pose_maps(t[None]), torch.zeros_like(warped)).argmax(1)[0].numpy()
            assert (zero != frames.parsings[i]).mean() > 0.001  # the warp input changed the frame


def test_first_stage_weights_run_at_their_training_size(tmp_path):
    """Weights whose cards say size 128 run at 128 and come back up-sampled to 256x256."""
    import json

    from psc_engine.weights import make_placeholder
    make_placeholder(tmp_path, base=4)
    for name in ("pm", "aa", "ct"):
        card = json.loads((tmp_path / f"{name}.json").read_text())
        card["size"] = 128
        (tmp_path / f"{name}.json").write_text(json.dumps(card))
    pipe = Pipeline.from_pretrained(tmp_path, device="cpu")
    assert pipe.size == 128
    image, parsing, pose, targets = example_inputs(3)
    frames = pipe.transfer(image, parsing, pose, targets, batch_size=2)
    assert frames.images.shape == (3, 256, 256, 3) and frames.parsings.shape == (3, 256, 256)
    assert pipe.interpolate(pose, targets[1], [0.5]).shape == (1, 18, 2)
    card = json.loads((tmp_path / "ct.json").read_text())
    card["size"] = 256
    (tmp_path / "ct.json").write_text(json.dumps(card))
    with pytest.raises(PSCError, match="different sizes"):
        Pipeline.from_pretrained(tmp_path, device="cpu")


def test_bfloat16_on_cpu_stays_close_to_float32(tiny_weights):
    """half=True (the older spelling of bfloat16) on the CPU runs AA and CT in bfloat16 (warping
    and class means in float32): the same frames within a stated tolerance (mean abs difference
    under 1 of 255, parsing the same on 99 % of pixels) on untrained nets; tests/test_speed.py
    checks the shipped weights against precision.TOLERANCE."""
    image, parsing, pose, targets = example_inputs(4)
    full = Pipeline.from_pretrained(tiny_weights, device="cpu", precision="float32").transfer(image, parsing, pose, targets)
    half = Pipeline.from_pretrained(tiny_weights, device="cpu", half=True).transfer(image, parsing, pose, targets)
    diff = np.abs(half.images.astype(int) - full.images.astype(int))
    assert 0 < diff.mean() < 1  # bfloat16 did run (not exactly float32), and stays close
    assert (half.parsings == full.parsings).mean() > 0.99


def test_nchw_pipeline_gives_the_channels_last_frames(tiny_weights):
    """The bench's seed-style loop runs the same nets in NCHW: same frames (layout is not a result)."""
    from psc_engine.weights import NETS, load_weights

    image, parsing, pose, targets = example_inputs(3)
    cl = Pipeline.from_pretrained(tiny_weights, device="cpu", precision="float32").transfer(image, parsing, pose, targets)
    nets = [load_weights(tiny_weights, n)[0] for n in NETS]
    nchw = Pipeline(*nets, device="cpu", precision="float32", channels_last=False).transfer(image, parsing, pose, targets, batch_size=1)
    assert np.abs(nchw.images.astype(int) - cl.images.astype(int)).max() <= 2


def test_background_away_from_the_person_is_the_reference_photo(pipe):
    """keep_background: beyond the margin around both the reference's person and the frame's
    parsing, each frame is the reference photo's pixels; around the person it is CT's output
    (the placeholder CT paints something else there)."""
    import torch.nn.functional as F
    import torch

    from psc_engine.pipeline import BACKGROUND_MARGIN

    image, parsing, pose, targets = example_inputs(3)
    shapes = np.stack([np.roll(parsing, dx, axis=1) for dx in (-10, 0, 10)])  # the placeholder AA's would be noise
    images, labels_out = pipe.render(pipe.encode_reference(image, parsing, pose), targets, shapes)
    for frame, labels in zip(images.cpu().numpy(), labels_out.cpu().numpy()):
        person = torch.from_numpy(((labels > 0) | (parsing > 0)).astype(np.float32))[None, None]
        reach = F.max_pool2d(person, 2 * (BACKGROUND_MARGIN + 8) + 1, stride=1, padding=BACKGROUND_MARGIN + 8)[0, 0].numpy()
        far, on = reach == 0, person[0, 0].numpy() > 0
        assert far.mean() > 0.3
        assert np.abs(frame[far].astype(int) - image[far].astype(int)).max() <= 1
        assert np.abs(frame[on].astype(int) - image[on].astype(int)).mean() > 5

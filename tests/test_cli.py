"""The command line in a real subprocess: the original's `test` job, `animate`, `bench`, and errors."""
import json
import shutil

import numpy as np
from PIL import Image

from conftest import EXAMPLE, make_test_layout, run_cli
from psc_engine.evaluation.bench import example_inputs
from psc_engine.formats.images import write_png
from psc_engine.formats.poses import write_pose_csv


def test_test_command_writes_frames_and_process_strips(tiny_weights, test_layout, tmp_path):
    out, proc = tmp_path / "out", tmp_path / "proc"
    r = run_cli("test", "--data_dir", test_layout, "--output_dir", out, "--process_dir", proc,
                "--weights", tiny_weights, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    frames = sorted(p.name for p in out.iterdir())
    assert frames == [f"{s}_t{t:.1f}.png" for s in ("0000", "0001") for t in (0.2, 0.4, 0.6, 0.8, 1.0)]
    assert Image.open(out / frames[0]).size == (256, 256)
    strips = sorted(proc.iterdir())
    assert [p.name for p in strips] == ["0000.png", "0001.png"]
    assert Image.open(strips[0]).size == (128 * 19, 128)
    # Never overwrite without being asked.
    r2 = run_cli("test", "--data_dir", test_layout, "--output_dir", out, "--process_dir", proc, "--weights", tiny_weights)
    assert r2.returncode == 2 and "already holds files" in r2.stderr and "Traceback" not in r2.stderr


def test_animate_key_frames_fill_with_pm(tiny_weights, tmp_path):
    image, parsing, pose, targets = example_inputs(3)
    write_png(tmp_path / "i.png", image)
    write_png(tmp_path / "s.png", parsing)
    write_pose_csv(tmp_path / "p.csv", pose[None])
    write_pose_csv(tmp_path / "keys.csv", targets[:3])
    out = tmp_path / "frames"
    r = run_cli("animate", "--image", tmp_path / "i.png", "--parsing", tmp_path / "s.png", "--pose", tmp_path / "p.csv",
                "--key_poses", tmp_path / "keys.csv", "--key_frames", "1,4,6", "--output_dir", out,
                "--weights", tiny_weights, "--progress", "json", "--batch_size", "4")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert {k: events[0][k] for k in ("event", "total")} == {"event": "start", "total": 6}
    assert events[0]["precision"] in ("float32", "bfloat16", "float16") and events[0]["reason"]
    assert [e["done"] for e in events if e["event"] == "frame"] == [1, 2, 3, 4, 5, 6]
    assert events[-1]["event"] == "done"
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:05d}.png" for i in range(1, 7)]


def test_animate_frames_equal_the_api(tiny_weights, tmp_path):
    from psc_engine import Pipeline

    image, parsing, pose, targets = example_inputs(3)
    write_png(tmp_path / "i.png", image)
    write_png(tmp_path / "s.png", parsing)
    write_pose_csv(tmp_path / "p.csv", pose[None])
    write_pose_csv(tmp_path / "t.csv", targets)
    r = run_cli("animate", "--image", tmp_path / "i.png", "--parsing", tmp_path / "s.png", "--pose", tmp_path / "p.csv",
                "--poses", tmp_path / "t.csv", "--output_dir", tmp_path / "o", "--weights", tiny_weights)
    assert r.returncode == 0, r.stderr
    from psc_engine.formats.poses import read_pose_csv
    expected = Pipeline.from_pretrained(tiny_weights, "cpu").transfer(image, parsing, read_pose_csv(tmp_path / "p.csv")[1][0],
                                                                      read_pose_csv(tmp_path / "t.csv")[1])
    got = np.stack([np.asarray(Image.open(tmp_path / "o" / f"frame_{i:05d}.png")) for i in (1, 2, 3)])
    assert np.abs(got.astype(int) - expected.images.astype(int)).max() <= 1


def test_errors_are_one_line_and_write_nothing(tiny_weights, tmp_path):
    layout = make_test_layout(tmp_path / "t")
    (layout / "P1" / "0001.csv").unlink()
    out = tmp_path / "out"
    r = run_cli("test", "--data_dir", layout, "--output_dir", out, "--process_dir", tmp_path / "proc", "--weights", tiny_weights)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "0001" in r.stderr and "P1" in r.stderr
    assert not out.exists()

    layout = make_test_layout(tmp_path / "t2")
    (layout / "P1" / "0000.csv").write_text("0,1,2\n0,1,2\n")
    r = run_cli("test", "--data_dir", layout, "--output_dir", out, "--process_dir", tmp_path / "proc", "--weights", tiny_weights)
    assert r.returncode == 2 and "0000.csv" in r.stderr and "expected 19 values" in r.stderr
    assert not out.exists()

    layout = make_test_layout(tmp_path / "t3")
    Image.new("RGB", (320, 240)).save(layout / "I0" / "0000.png")
    r = run_cli("test", "--data_dir", layout, "--output_dir", out, "--process_dir", tmp_path / "proc", "--weights", tiny_weights)
    assert r.returncode == 2 and "I0/0000.png" in r.stderr and "expected 256x256" in r.stderr

    layout = make_test_layout(tmp_path / "t4")
    lab = np.zeros((256, 256), np.uint8)
    lab[0, 0] = 7
    write_png(layout / "S0" / "0000.png", lab)
    r = run_cli("test", "--data_dir", layout, "--output_dir", out, "--process_dir", tmp_path / "proc", "--weights", tiny_weights)
    assert r.returncode == 2 and "S0/0000.png" in r.stderr and "label 7" in r.stderr

    weights = tmp_path / "w"
    shutil.copytree(tiny_weights, weights)
    (weights / "ct.safetensors").write_bytes((weights / "ct.safetensors").read_bytes()[:-10])
    layout = make_test_layout(tmp_path / "t5")
    r = run_cli("test", "--data_dir", layout, "--output_dir", out, "--process_dir", tmp_path / "proc", "--weights", weights)
    assert r.returncode == 2 and "ct.safetensors" in r.stderr and "SHA-256" in r.stderr
    assert not out.exists() and "Traceback" not in r.stderr


def test_bench_prints_json_line():
    r = run_cli("bench", "--device", "cpu", "--random", "--base", "4", "--precision", "float32", "--batch_sizes", "1,4",
                "--seed_frames", "2", "--seconds", "0.2", "--repeats", "2", "--end_to_end", "12", "--photo")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.splitlines()[0])
    for key in ("fps_batch1", "fps_batch4", "fps_seed_loop", "fps_seed_loop_channels_last", "gflop_per_frame",
                "speedup_vs_seed_loop", "compute_seconds", "end_to_end_seconds"):
        assert result[key] > 0
    assert result["max_abs_diff_vs_seed_loop"] <= 2  # float32: the fast path gives the seed loop's frames
    assert result["end_to_end_frames"] == 12 and "end to end" in r.stdout
    assert result["photo"]["keypoint_fps"] > 0 and result["photo"]["parser_fps"] > 0 and "photo nets" in r.stdout


def test_bundled_example_with_shipped_weights(tmp_path):
    """The README's first command: the bundled example through the repository's weights."""
    if not (EXAMPLE / "I0").is_dir():
        import pytest
        pytest.fail(f"bundled example missing at {EXAMPLE}")
    r = run_cli("test", "--data_dir", EXAMPLE, "--output_dir", tmp_path / "o", "--process_dir", tmp_path / "p",
                "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "o").glob("*.png"))) == 10
    assert len(list((tmp_path / "p").glob("*.png"))) == 2


def test_missing_s0_and_p0_are_estimated_from_the_photo(tiny_weights, tmp_path):
    """On the bundled example's rendered people: a person MediaPipe (where installed) finds too."""
    layout = tmp_path / "t"
    shutil.copytree(EXAMPLE, layout)
    (layout / "S0" / "0001.png").unlink()
    (layout / "P0" / "0000.csv").unlink()
    r = run_cli("test", "--data_dir", layout, "--output_dir", tmp_path / "o", "--process_dir", tmp_path / "p",
                "--weights", tiny_weights)
    assert r.returncode == 0, r.stderr
    assert "sample 0000: no pose given" in r.stderr and "sample 0001: no parsing given" in r.stderr
    assert len(list((tmp_path / "o").glob("*.png"))) == 10


def test_prepare_then_clip_from_the_photo_alone(tiny_weights, tmp_path):
    """Issue 9's end to end: a photo of another size -> prepare -> animate with no parsing, no pose."""
    image = np.asarray(Image.open(EXAMPLE / "I0" / "0000.jpg").convert("RGB"))  # a rendered person
    targets = example_inputs(4)[3]
    photo = np.full((480, 360, 3), 200, np.uint8)
    photo[100:356, 50:306] = image
    Image.fromarray(photo).save(tmp_path / "photo.jpg", quality=95)
    r = run_cli("prepare", "--image", tmp_path / "photo.jpg", "--out", tmp_path / "prep", "--weights", tiny_weights)
    assert r.returncode == 0, r.stderr
    for sub, ext in (("I0", "png"), ("S0", "png"), ("P0", "csv"), ("overlay", "png")):
        assert (tmp_path / "prep" / sub / f"photo.{ext}").is_file()
    assert Image.open(tmp_path / "prep" / "I0" / "photo.png").size == (256, 256)
    r2 = run_cli("prepare", "--image", tmp_path / "photo.jpg", "--out", tmp_path / "prep", "--weights", tiny_weights)
    assert r2.returncode == 2 and "already exists" in r2.stderr
    write_pose_csv(tmp_path / "t.csv", targets)
    r = run_cli("animate", "--image", tmp_path / "prep" / "I0" / "photo.png",
                "--poses", tmp_path / "t.csv", "--output_dir", tmp_path / "clip", "--weights", tiny_weights)
    assert r.returncode == 0, r.stderr
    assert "no parsing and pose given" in r.stderr
    assert len(list((tmp_path / "clip").glob("frame_*.png"))) == 4



def test_shipped_photo_nets_find_the_bundled_person():
    """The shipped keypoint net and parser on the bundled example photos (test-split renders with
    their true S0 and P0): far above what untrained nets give (PCK ~0, mIoU ~0.01)."""
    import torch

    from psc_engine.formats.images import read_image, read_parsing
    from psc_engine.evaluation.metrics import confusion, miou, pck
    from psc_engine.formats.poses import read_pose_csv
    from psc_engine.prepare import PhotoPreparer

    prep = PhotoPreparer.from_pretrained(None, "cpu")
    if prep.placeholder:
        import pytest
        pytest.fail("weights/ holds placeholder photo nets")
    ok = total = 0
    conf = torch.zeros(7, 7, dtype=torch.long)
    for stem in ("0000", "0001"):
        parsing, pose = prep.estimate(read_image(EXAMPLE / "I0" / f"{stem}.jpg"))
        truth_pose = read_pose_csv(EXAMPLE / "P0" / f"{stem}.csv")[1][0]
        a, b = pck(pose[None], truth_pose[None], 25.6)
        ok, total = ok + a, total + b
        conf += confusion(torch.from_numpy(parsing[None]), torch.from_numpy(read_parsing(EXAMPLE / "S0" / f"{stem}.png")[None]))
    assert ok / total >= 0.7, (ok, total)
    assert miou(conf) >= 0.45

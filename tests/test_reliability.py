"""Bad input, faults and untrusted files on the engine side: one clear line, nothing lost.

Each test is one row of the table in tests/README.md.
"""
import io
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from conftest import make_test_layout, run_cli
from psc_engine import PSCError
from psc_engine.evaluation.bench import example_inputs
from psc_engine.formats.images import read_image, read_parsing, write_png
from psc_engine.formats.outputs import OutputDir
from psc_engine.formats.poses import read_pose_csv, write_pose_csv
from psc_engine.weights import load_weights


def animate_args(tmp_path, **override):
    image, parsing, pose, targets = example_inputs(3)
    files = {"image": tmp_path / "i.png", "parsing": tmp_path / "s.png", "pose": tmp_path / "p.csv", "poses": tmp_path / "t.csv"}
    write_png(files["image"], image)
    write_png(files["parsing"], parsing)
    write_pose_csv(files["pose"], pose[None])
    write_pose_csv(files["poses"], targets)
    files.update(override)
    return ["animate", "--image", files["image"], "--parsing", files["parsing"], "--pose", files["pose"],
            "--poses", files["poses"], "--output_dir", tmp_path / "frames"]


def assert_user_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("psc: error: "), r.stderr
    for w in words:
        assert w in line, (w, line)


# --- pose CSV ---------------------------------------------------------------------------------

def test_csv_with_20_values(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text((",".join(["0"] * 20) + "\n") * 2)
    with pytest.raises(PSCError, match="expected 19 values .* got 20"):
        read_pose_csv(p)


def test_csv_inf_value(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text(",".join(["0"] * 19) + "\n" + ",".join(["0"] * 18 + ["inf"]) + "\n")
    with pytest.raises(PSCError, match="infinite"):
        read_pose_csv(p)


def test_joints_far_outside_the_frame_work(tiny_weights, tmp_path):
    """Documented: a joint far outside the frame simply lights no pose map (like a missing one)."""
    image, parsing, pose, targets = example_inputs(2)
    targets[:, 4] = [-5000, 9000]
    write_pose_csv(tmp_path / "far.csv", targets)
    r = run_cli(*animate_args(tmp_path, poses=tmp_path / "far.csv"), "--weights", tiny_weights)
    assert r.returncode == 0, r.stderr


def test_all_joints_missing_in_a_target_works_but_not_in_the_reference(tiny_weights, tmp_path):
    _, _, _, targets = example_inputs(2)
    targets[1] = np.nan  # a frame where the camera sees none of the joints
    write_pose_csv(tmp_path / "some_empty.csv", targets)
    r = run_cli(*animate_args(tmp_path, poses=tmp_path / "some_empty.csv"), "--weights", tiny_weights)
    assert r.returncode == 0, r.stderr
    write_pose_csv(tmp_path / "empty_ref.csv", np.full((1, 18, 2), np.nan))
    r = run_cli(*animate_args(tmp_path, pose=tmp_path / "empty_ref.csv"), "--output_dir", tmp_path / "x", "--weights", tiny_weights)
    assert_user_error(r, "empty_ref.csv", "no joints")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_fuzz_csv_reader_never_crashes(tmp_path, data):
    p = tmp_path / "fuzz.csv"
    p.write_bytes(data)
    try:
        ts, poses = read_pose_csv(p)
    except PSCError as e:
        assert str(p) in str(e)
    else:
        assert poses.shape[1:] == (18, 2) and len(ts) == len(poses)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.one_of(st.just(-1.0), st.floats(0, 255)), min_size=36, max_size=36), min_size=1, max_size=4),
       st.lists(st.floats(0, 1), min_size=4, max_size=4))
def test_csv_round_trip_property(values, ts):
    poses = np.array(values, np.float32).reshape(-1, 18, 2)
    poses[(poses == -1).any(-1)] = np.nan
    ts = np.array(ts[: len(poses)], np.float32)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "p.csv")
        write_pose_csv(path, poses, ts)
        t2, p2 = read_pose_csv(path)
    assert np.array_equal(np.isnan(p2), np.isnan(poses))
    np.testing.assert_allclose(p2[~np.isnan(p2)], poses[~np.isnan(poses)], atol=1e-3)
    np.testing.assert_allclose(t2, ts, atol=1e-4)


# --- images and parsings ----------------------------------------------------------------------

def test_16bit_and_cmyk_images(tmp_path):
    arr16 = (np.arange(256 * 256, dtype=np.uint32).reshape(256, 256) % 65535).astype(np.uint16)
    Image.fromarray(arr16).save(tmp_path / "g16.png")
    Image.new("CMYK", (256, 256), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    assert read_image(tmp_path / "g16.png").shape == (256, 256, 3)
    red = read_image(tmp_path / "cmyk.jpg")
    assert red[..., 0].mean() > 200 and red[..., 1].mean() < 60


def test_truncated_image(tmp_path):
    image, _, _, _ = example_inputs(1)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(PSCError, match="cut.jpg: not a readable image"):
        read_image(tmp_path / "cut.jpg")


def test_image_and_parsing_of_different_sizes(tmp_path):
    Image.new("L", (128, 128)).save(tmp_path / "small_s.png")
    with pytest.raises(PSCError, match="small_s.png: image is 128x128, expected 256x256"):
        read_parsing(tmp_path / "small_s.png")


def test_colour_coded_parsing_is_refused(tmp_path):
    rgb = np.zeros((256, 256, 3), np.uint8)
    rgb[100:150, 100:150] = (255, 85, 0)  # a colour-coded class from another tool
    Image.fromarray(rgb).save(tmp_path / "lip.png")
    with pytest.raises(PSCError, match="label 255 .*colour-coded"):
        read_parsing(tmp_path / "lip.png")


def test_parsing_with_no_person(tiny_weights, tmp_path):
    write_png(tmp_path / "bg.png", np.zeros((256, 256), np.uint8))
    r = run_cli(*animate_args(tmp_path, parsing=tmp_path / "bg.png"), "--weights", tiny_weights)
    assert_user_error(r, "bg.png", "no person")
    assert not (tmp_path / "frames").exists()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=2000))
def test_fuzz_image_readers_never_crash(tmp_path, data):
    for name, reader in (("f.png", read_image), ("f.jpg", read_image), ("s.png", read_parsing)):
        p = tmp_path / name
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + data if name.endswith("png") else b"\xff\xd8\xff" + data)
        with pytest.raises(PSCError):
            reader(p)


# --- folders ----------------------------------------------------------------------------------

def test_extra_files_are_ignored_and_empty_folder_is_refused(tiny_weights, tmp_path):
    layout = make_test_layout(tmp_path / "t")
    (layout / "I0" / "notes.txt").write_text("hello")
    (layout / "P1" / "9999.csv").write_text("stray")
    (layout / "README").write_text("x")
    r = run_cli("test", "--data_dir", layout, "--output_dir", tmp_path / "o", "--process_dir", tmp_path / "p", "--weights", tiny_weights)
    assert r.returncode == 0, r.stderr
    empty = tmp_path / "empty"
    for sub in ("I0", "S0", "P0", "P1"):
        (empty / sub).mkdir(parents=True)
    r = run_cli("test", "--data_dir", empty, "--output_dir", tmp_path / "o2", "--process_dir", tmp_path / "p2", "--weights", tiny_weights)
    assert_user_error(r, "I0", "no images")


def test_overwrite_only_when_asked(tiny_weights, tmp_path):
    out = tmp_path / "frames"
    out.mkdir()
    (out / "mine.png").write_bytes(b"precious")
    r = run_cli(*animate_args(tmp_path), "--weights", tiny_weights)
    assert_user_error(r, "frames", "--overwrite")
    assert (out / "mine.png").read_bytes() == b"precious"
    r = run_cli(*animate_args(tmp_path), "--weights", tiny_weights, "--overwrite")
    assert r.returncode == 0 and (out / "frame_00003.png").exists()


def test_two_jobs_in_one_folder(tmp_path):
    out = tmp_path / "o"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        out.mkdir()
        (out / ".psc-lock").write_text(str(holder.pid))
        with pytest.raises(PSCError, match=f"another job \\(pid {holder.pid}\\)"):
            with OutputDir(out, overwrite=True):
                pass
    finally:
        holder.kill()
        holder.wait()
    with OutputDir(out, overwrite=True) as o:  # the holder is gone: its stale lock is taken over
        o.write_png("a.png", np.zeros((4, 4, 3), np.uint8))
    assert (out / "a.png").exists() and not (out / ".psc-lock").exists()


# --- weights ----------------------------------------------------------------------------------

def test_pickle_in_a_weight_file_never_runs(tiny_weights, tmp_path):
    """A checkpoint that would create a marker file when unpickled: loading must refuse it unrun."""
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder = tmp_path / "w"
    shutil.copytree(tiny_weights, folder)
    blob = pickle.dumps({"state": Evil()})
    (folder / "pm.safetensors").write_bytes(blob)
    card = json.loads((folder / "pm.json").read_text())
    import hashlib
    card["sha256"] = hashlib.sha256(blob).hexdigest()  # even with a matching hash
    (folder / "pm.json").write_text(json.dumps(card))
    with pytest.raises(PSCError, match="pm.safetensors: not a readable safetensors file"):
        load_weights(folder, "pm")
    assert not marker.exists()
    # The training checkpoint loader is torch.load(weights_only=True): it refuses the same payload.
    import torch
    (tmp_path / "evil.pt").write_bytes(blob)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "evil.pt", weights_only=True)
    assert not marker.exists()


def test_checkpoint_of_another_width(tiny_weights, tmp_path):
    from psc_engine.weights import make_placeholder
    other = tmp_path / "other"
    make_placeholder(other, base=8)
    folder = tmp_path / "w"
    shutil.copytree(tiny_weights, folder)
    shutil.copy(other / "aa.safetensors", folder / "aa.safetensors")
    card = json.loads((folder / "aa.json").read_text())
    card["sha256"] = json.loads((other / "aa.json").read_text())["sha256"]
    (folder / "aa.json").write_text(json.dumps(card))
    with pytest.raises(PSCError, match="do not fit a aa net with config {'base': 4"):
        load_weights(folder, "aa")


def test_bad_weight_card(tiny_weights, tmp_path):
    folder = tmp_path / "w"
    shutil.copytree(tiny_weights, folder)
    (folder / "ct.json").write_text("{not json")
    with pytest.raises(PSCError, match="ct.json: not valid JSON"):
        load_weights(folder, "ct")
    (folder / "ct.json").unlink()
    with pytest.raises(PSCError, match="missing weight card"):
        load_weights(folder, "ct")


# --- runtime ----------------------------------------------------------------------------------

def test_disk_full_leaves_no_half_written_frames(tmp_path, monkeypatch):
    import errno
    import psc_engine.formats.images as images

    calls = {"n": 0}
    real = images.atomic_write_bytes

    def flaky(path, data):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(images, "atomic_write_bytes", flaky)
    out = tmp_path / "o"
    with pytest.raises(PSCError, match="cannot write frame \\(No space left on device\\)"):
        with OutputDir(out) as o:
            for i in range(5):
                o.write_png(f"frame_{i:05d}.png", np.zeros((8, 8, 3), np.uint8))
    assert not out.exists()  # it made the folder, so it removes it whole


def test_killed_engine_leaves_only_complete_frames(tiny_weights, tmp_path):
    """SIGKILL mid-job: every frame_*.png on disk opens as a whole PNG (temp names are hidden)."""
    _, _, _, targets = example_inputs(40)
    write_pose_csv(tmp_path / "long.csv", targets)
    args = animate_args(tmp_path, poses=tmp_path / "long.csv")
    proc = subprocess.Popen([sys.executable, "-m", "psc_engine", *map(str, args), "--weights", str(tiny_weights),
                             "--batch_size", "2", "--progress", "json"], stdout=subprocess.PIPE, text=True)
    seen = 0
    for line in proc.stdout:
        if '"frame"' in line:
            seen += 1
            if seen == 3:
                proc.kill()
                break
    proc.wait()
    frames = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert 3 <= len(frames) < 40
    for f in frames:
        Image.open(f).load()


def test_csv_with_bare_carriage_returns(tmp_path):
    """Old Mac line endings (found by the fuzz test): read like any other line break."""
    p = tmp_path / "mac.csv"
    p.write_bytes((",".join(["0"] * 19) + "\r" + ",".join(["0"] * 19) + "\r").encode())
    assert read_pose_csv(p)[1].shape == (1, 18, 2)
    p.write_bytes(b'0,"1\r\n2",3\n')  # a quoted field spanning lines: still one clean error
    with pytest.raises(PSCError):
        read_pose_csv(p)

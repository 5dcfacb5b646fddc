"""Issue 9 in the add-on: pick a photo of any size, press Prepare, see the overlay; the prepared
photo, parsing and pose then feed the clip, and either can still be replaced by the user's file.
Also the photo-only path of the headless batch script, end to end with the real engine."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest_addon import (REPO, add_camera, addon, animate_arm_swing, build_rig, bpy, draw_panels,  # noqa: F401
                            fake_engine, generate, leftovers, prefs_reset, private_tmp, psc_strips, set_prefs,
                            write_inputs)


def make_photo(path, size=(360, 480)):
    """A photo of another size than 256x256: the bundled example's rendered person (which
    MediaPipe, where installed, finds as it finds a photographed one) pasted on a grey background."""
    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(REPO / "psc_engine" / "example" / "test" / "I0" / "0000.jpg").convert("RGB"))
    w, h = size
    photo = np.full((h, w, 3), 200, np.uint8)
    photo[h // 2 - 128:h // 2 + 128, w // 2 - 128:w // 2 + 128] = image
    Image.fromarray(photo).save(path, quality=95)
    return str(path)


def settings_paths(s):
    return s.image, s.parsing, s.pose_csv, s.overlay, s.pose_source


@pytest.mark.engine
def test_prepare_button_with_the_real_engine(addon, tiny_weights, prefs_reset, private_tmp, tmp_path):
    from PIL import Image

    s = bpy.context.scene.psc
    set_prefs(weights_dir=str(tiny_weights))
    s.source_photo = make_photo(tmp_path / "photo.jpg")
    s.pose_source = "RIG"
    result, report = generate("prepare_photo")
    assert result == {"FINISHED"}, report
    # A never-saved .blend: `//psc/prepared/photo` lands in the stand-in folder, and the report says so.
    folder = private_tmp / "psc_unsaved" / "psc" / "prepared" / "photo"
    assert report.startswith(f"PSC: photo prepared in {folder} (") and "The .blend is not saved" in report
    assert settings_paths(s) == (str(folder / "I0" / "photo.png"), str(folder / "S0" / "photo.png"),
                                 str(folder / "P0" / "photo.csv"), str(folder / "overlay" / "photo.png"), "CSV")
    assert Image.open(s.image).size == (256, 256) and Image.open(s.overlay).size == (512, 256)
    assert len(addon.contract.protocol.read_pose_csv(s.pose_csv)[1]) == 1
    assert "Engine: The photo nets are untrained placeholders" in report  # the engine's warning is passed on
    # The overlay shows in the panel (a preview; its icon is drawn only with a UI, but the image is loaded).
    prev = addon.overlay_preview.preview(s.overlay)
    assert prev is not None and tuple(prev.image_size) != (0, 0)
    log = draw_panels(addon)
    assert ("operator", "psc.prepare_photo") in log and any(kind == "template_icon" for kind, _ in log)
    assert ("label", "Overlay: photo.png (left: framed photo; right: parsing and skeleton)") in log
    assert not [p for p in folder.parent.iterdir() if ".partial" in p.name]


def test_prepared_files_feed_the_clip_and_can_be_replaced(addon, fake_engine, tmp_path, monkeypatch):
    """After Prepare, Generate sends the prepared I0/S0/P0; a parsing the user picks replaces the estimated one."""
    scene, s = bpy.context.scene, bpy.context.scene.psc
    rig = build_rig("mixamo")
    add_camera()
    animate_arm_swing(rig, "mixamo", frames=3)
    s.armature, s.output_dir = rig, str(tmp_path / "out")
    own_image, own_parsing, own_pose = write_inputs(tmp_path / "own")
    s.source_photo = own_image
    result, report = generate("prepare_photo")
    assert result == {"FINISHED"}, report
    assert report.startswith("PSC: photo prepared in") and "(9/18 joints seen)" in report
    assert "Engine: Fake photo nets" in report
    prepared = settings_paths(s)
    # Preparing again never overwrites the first result (the user may have edited it).
    folder = Path(prepared[0]).parent.parent
    Path(prepared[1]).write_bytes(b"edited by the user")
    assert generate("prepare_photo")[0] == {"FINISHED"}
    assert s.image == str(folder.parent / (folder.name + "_001") / "I0" / (folder.name + ".png"))
    assert Path(prepared[1]).read_bytes() == b"edited by the user"
    s.image, s.pose_csv = prepared[0], prepared[2]
    s.parsing = own_parsing  # the user's own parsing replaces the estimated one
    log = tmp_path / "argv.json"
    monkeypatch.setenv("PSC_FAKE_LOG", str(log))
    result, report = generate()
    assert result == {"FINISHED"}, report
    argv = json.loads(log.read_text())
    sent = {k: argv[argv.index(k) + 1] for k in ("--image", "--parsing", "--pose")}
    assert sent == {"--image": prepared[0], "--parsing": own_parsing, "--pose": prepared[2]}
    assert len(list((tmp_path / "out").glob("frame_*.png"))) == 3


def test_prepare_errors_and_cancel_leave_nothing(addon, fake_engine, private_tmp, tmp_path, monkeypatch):
    """No photo, a missing photo, an engine error, and a cancel mid-run (the modal path: the UI stays live,
    Generate is refused while Prepare runs): one-line reports, no files, the settings untouched."""
    from blender_addon import operators
    from blender_addon.prepare_job import PrepareJob

    s = bpy.context.scene.psc
    s.image, s.parsing, s.pose_csv = "/keep/I0.png", "/keep/S0.png", "/keep/P0.csv"
    before = settings_paths(s)
    result, report = generate("prepare_photo")
    assert result == {"CANCELLED"} and report == "No photo to prepare set: choose it in the PSC panel (Photo to prepare)"
    s.source_photo = str(tmp_path / "nowhere.jpg")
    result, report = generate("prepare_photo")
    assert result == {"CANCELLED"} and report.startswith("Photo to prepare not found: ") and "nowhere.jpg" in report
    s.source_photo = "//relative.jpg"
    result, report = generate("prepare_photo")
    assert result == {"CANCELLED"} and "relative to the .blend, but the .blend was never saved" in report

    s.source_photo = make_photo(tmp_path / "photo.png", (400, 300))
    set_prefs(python_path=str(tmp_path / "no" / "python"))
    result, report = generate("prepare_photo")
    assert result == {"CANCELLED"} and report.startswith(f"Engine interpreter not found: {tmp_path / 'no' / 'python'}. Set it")
    set_prefs(python_path="")
    monkeypatch.setenv("PSC_FAKE_FAIL", f"{s.source_photo}: no person found in the photo")
    result, report = generate("prepare_photo")
    assert result == {"CANCELLED"} and report == f"Engine: {s.source_photo}: no person found in the photo"
    assert settings_paths(s) == before and leftovers(tmp_path) == []

    monkeypatch.delenv("PSC_FAKE_FAIL")
    monkeypatch.setenv("PSC_FAKE_DELAY", "30")
    operators._job = job = PrepareJob(bpy.context)
    t0 = time.time()
    while time.time() - t0 < 1.0:
        assert operators.advance(bpy.context, job) is True  # a tick returns at once: Blender stays live
        time.sleep(0.1)
    assert job.status.startswith("Preparing the photo (") and 0 < job.progress < 1
    assert [v for kind, v in draw_panels(addon) if kind == "progress"] == [pytest.approx(job.progress, abs=1e-6)] * 2
    result, report = generate()
    assert result == {"CANCELLED"} and report.startswith("PSC is already busy")
    pid = job.engine.proc.pid
    assert bpy.ops.psc.cancel_clip() == {"FINISHED"}
    assert operators.advance(bpy.context, job) is False and job.phase == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert settings_paths(s) == before and leftovers(tmp_path) == []


@pytest.mark.engine
def test_batch_clip_from_the_photo_alone(addon, tiny_weights, tmp_path):
    """Issue 9's end to end from the headless batch script: a .blend and a photo of any size, nothing else."""
    rig = build_rig("rigify")
    add_camera()
    animate_arm_swing(rig, "rigify", frames=4)
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    photo = make_photo(tmp_path / "photo.jpg")
    cmd = [sys.executable, str(REPO / "scripts" / "batch_clip.py"), "--blend", str(blend), "--image", photo,
           "--weights", str(tiny_weights), "--batch-size", "4", "--save"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    prepared = tmp_path / "psc" / "prepared" / "photo"
    assert {p.relative_to(prepared).as_posix() for p in prepared.rglob("*.*")} == {
        "I0/photo.png", "S0/photo.png", "P0/photo.csv", "overlay/photo.png"}
    frames = tmp_path / "psc" / "Scene"
    assert len(list(frames.glob("frame_*.png"))) == 4
    assert "PSC: photo prepared in" in r.stdout and "psc: 4 frames in" in r.stdout
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    s = bpy.context.scene.psc
    assert Path(bpy.path.abspath(s.image)) == prepared / "I0" / "photo.png" and s.pose_source == "CSV"
    assert Path(bpy.path.abspath(s.pose_csv)) == prepared / "P0" / "photo.csv"
    (strip,) = psc_strips()
    assert len(strip.elements) == 4


def test_batch_clip_photo_arguments(addon):
    """Which arguments make the photo-only path (Prepare first) and which keep the given files."""
    sys.path.insert(0, str(REPO / "scripts"))
    import batch_clip

    def photo(*argv):
        return batch_clip.photo_to_prepare(batch_clip.parse_args(list(argv)))

    assert photo("--photo", "a.jpg") == "a.jpg"
    assert photo("--photo", "a.jpg", "--pose", "p.csv") == "a.jpg"  # prepared, then the pose replaced
    assert photo("--image", "a.jpg") == "a.jpg"  # nothing to go with the photo: prepare it
    assert photo("--image", "a.png", "--parsing", "s.png") is None
    assert photo("--image", "a.png", "--pose-from", "rig") is None
    assert photo("--blend", "x.blend") is None

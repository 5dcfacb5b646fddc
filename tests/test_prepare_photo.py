"""`prepare` on photos: the framing, the left/right check, the person-mask constraint (no model
needed), MediaPipe Pose on the bundled example renders (skipped where mediapipe is not installed),
and the fallback to the project's own nets when mediapipe cannot be imported (a real subprocess)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import EXAMPLE, REPO, run_cli
from psc_engine import estimators
from psc_engine.errors import PSCError
from psc_engine.evaluation.metrics import pck
from psc_engine.formats.images import read_image, read_parsing
from psc_engine.formats.poses import flip_pose, read_pose_csv
from psc_engine.prepare import CROP_MARGIN, FULL_BODY, PhotoPreparer, framing, from_frame, to_frame

HAS_MEDIAPIPE = estimators.load_mediapipe()[0] is not None
needs_mediapipe = pytest.mark.skipif(not HAS_MEDIAPIPE, reason="mediapipe (the [photo] extra) is not installed")
NO_MEDIAPIPE = "import sys; sys.modules['mediapipe'] = None\nfrom psc_engine.cli import main\nsys.exit(main(sys.argv[1:]))"


def example(stem="0000"):
    return read_image(EXAMPLE / "I0" / f"{stem}.jpg"), read_pose_csv(EXAMPLE / "P0" / f"{stem}.csv")[1][0]


def in_photo(image, h=480, w=360, x=50, y=100, backdrop=(236, 236, 232)):
    """The 256x256 render pasted into a larger plain photo at (x, y)."""
    photo = np.empty((h, w, 3), np.uint8)
    photo[:] = backdrop
    photo[y:y + 256, x:x + 256] = image
    return photo


def box_mask(h, w, top, bottom, left, right):
    m = np.zeros((h, w), bool)
    m[top:bottom, left:right] = True
    return m


# --- framing, no model --------------------------------------------------------------------------

def test_full_body_photo_is_framed_full_body_at_the_training_height():
    (cx, cy, side), kind = framing(box_mask(1200, 900, 300, 900, 400, 560))
    assert kind == "full body"
    assert side == pytest.approx(600 / FULL_BODY) and (cx, cy) == (480, 600)


def test_knee_up_photo_stays_cut_by_the_bottom_edge_and_fills_the_frame():
    (cx, cy, side), kind = framing(box_mask(1000, 800, 100, 1000, 250, 550))
    assert kind == "cut by the bottom edge"
    assert cy + side / 2 == pytest.approx(1000)  # the frame's bottom is the photo's
    assert (100 - (cy - side / 2)) / side == pytest.approx(CROP_MARGIN)  # the head just below the top


def test_head_cut_by_the_top_edge_stays_cut_there():
    (cx, cy, side), kind = framing(box_mask(256, 256, 0, 240, 100, 150))
    assert kind == "cut by the top edge" and cy - side / 2 == pytest.approx(0)


def test_a_wide_pose_still_fits_across():
    (cx, cy, side), kind = framing(box_mask(400, 1000, 100, 300, 100, 900))
    assert side >= 800


def test_joints_outside_the_frame_are_missing_and_the_window_maps_back():
    pose = np.array([[10, 10], [300, 50], [150, 299], [150, 301]] + [[np.nan, np.nan]] * 14, np.float32)
    window = (100, 0, 200)  # x 100..300, y 0..200 of the photo -> the 256 frame
    framed = to_frame(pose, window)
    assert np.isnan(framed[[0, 1, 2, 3]]).all(-1).tolist() == [True, True, True, True]
    inside = np.array([[150, 100]] * 18, np.float32)
    assert np.allclose(from_frame(to_frame(inside, window), window), inside, atol=1e-4)


# --- left and right -----------------------------------------------------------------------------

def front_pose():
    """A person facing the camera: their right on the image's left."""
    p = np.full((18, 2), np.nan, np.float32)
    p[[2, 3, 4]] = [(80, 60), (70, 100), (68, 135)]
    p[[5, 6, 7]] = [(140, 60), (150, 100), (152, 135)]
    p[[8, 9, 10]] = [(95, 150), (95, 190), (95, 230)]
    p[[11, 12, 13]] = [(125, 150), (125, 190), (125, 230)]
    p[[0, 1, 14, 15, 16, 17]] = [(110, 40), (110, 60), (104, 33), (116, 33), (97, 36), (123, 36)]
    return p


def test_a_consistent_pose_is_left_as_it_is_and_so_is_its_mirror():
    p, v = front_pose(), np.ones(18, np.float32)
    for pose in (p, flip_pose(p)):
        out, _, notes = estimators.untangle(pose, v)
        assert notes == [] and np.array_equal(out, pose, equal_nan=True)


@pytest.mark.parametrize("group,joints", [("legs", (8, 9, 10, 11, 12, 13)), ("arms", (2, 3, 4, 5, 6, 7))])
def test_a_limb_pair_labelled_the_other_way_round_is_relabelled(group, joints):
    """A detector keeping front-view labels on one limb pair crosses that pair; the face and the
    other pair outvote it and the pair's labels are swapped back."""
    p, v = front_pose(), np.linspace(0.5, 1, 18).astype(np.float32)
    crossed, cv = p.copy(), v.copy()
    r, l = list(joints[:3]), list(joints[3:])
    crossed[r + l], cv[r + l] = p[l + r], v[l + r]
    out, vis, notes = estimators.untangle(crossed, cv)
    assert np.array_equal(out, p, equal_nan=True) and np.array_equal(vis, v)
    assert len(notes) == 1 and notes[0].startswith(group)


def test_a_back_view_without_a_face_follows_the_shoulders():
    back = flip_pose(front_pose())  # facing away: their right on the image's right
    back[[0, 14, 15, 16, 17]] = np.nan
    crossed = back.copy()
    crossed[[8, 9, 10, 11, 12, 13]] = back[[11, 12, 13, 8, 9, 10]]
    out, _, notes = estimators.untangle(crossed, np.ones(18, np.float32))
    assert np.array_equal(out, back, equal_nan=True) and notes


def test_a_side_view_casts_no_vote():
    side = front_pose()
    side[:, 0] = 110 + (side[:, 0] - 110) * 0.05  # every pair nearly on top of each other
    side[[8, 11]] = side[[11, 8]]
    out, _, notes = estimators.untangle(side, np.ones(18, np.float32))
    assert notes == [] and np.array_equal(out, side, equal_nan=True)


# --- the parser within the person mask ----------------------------------------------------------

def test_parsing_keeps_within_the_person_mask():
    prep = PhotoPreparer.from_pretrained(None, "cpu", finder="nets")
    image, _ = example()
    mask = read_parsing(EXAMPLE / "S0" / "0000.png") > 0
    parsing = prep.parse_within(image, mask)
    assert (parsing[~mask] == 0).all() and (parsing[mask] > 0).all()


def face_landmarks(z_nose=-10.0):
    """MediaPipe-style (33, 4) landmarks of a face looking at the camera: eyes at y 40, mouth at
    y 60 (d = 20), ears 40 px apart, nose z in front of the ears (negative: nearer)."""
    marks = np.zeros((33, 4), np.float32)
    marks[:, 3] = 1.0
    marks[0, :3] = (128, 50, z_nose)  # nose
    marks[2, :2], marks[5, :2] = (120, 40), (136, 40)  # eyes
    marks[7, :2], marks[8, :2] = (148, 44), (108, 44)  # ears
    marks[9, :2], marks[10, :2] = (134, 60), (122, 60)  # mouth
    marks[[11, 12], :2] = (150, 90), (106, 90)  # shoulders, for the torso length
    marks[[23, 24], :2] = (144, 170), (112, 170)  # hips
    return marks


def test_the_face_follows_mediapipe_face_landmarks():
    """Within the landmarks' face ellipse skin becomes face, and so does hair below the eye line
    of a face seen from the front; hair above it (a fringe), the neck below the chin and the
    clothes stay as they are; a face turned away or unsure landmarks change nothing."""
    from psc_engine.prepare import CHIN, FOREHEAD, face_from

    parsing = np.zeros((256, 256), np.uint8)
    parsing[10:90, 100:156] = 3  # skin: face and neck alike
    parsing[15:30, 100:156] = 1  # a fringe above the eyes
    parsing[45:55, 100:112] = 1  # hair beside the cheek
    parsing[90:140, 90:166] = 4
    out = face_from(parsing, face_landmarks())
    assert (out[40:60, 124:132] == 2).all()  # between the eyes and the mouth
    assert (out[45:55, 110:112] == 2).all()  # cheek hair inside the ellipse
    assert (out[20:30, 124:132] == 1).all()  # the fringe stays hair
    chin = int(60 + CHIN * 20)
    assert (out[chin + 2:90, 124:132] == 3).all()  # the neck stays skin
    assert out[int(40 - FOREHEAD * 20) - 2, 128] == 1 and (out[90:140] == parsing[90:140]).all()
    profile = face_landmarks()
    profile[7, :2], profile[8, :2] = (132, 44), (124, 44)  # the ears 8 px apart: a face seen from the side
    side = face_from(parsing, profile)
    assert (side[45:55, 110:112] == 1).all() and (side[40:60, 124:132] == 2).all()  # hair beside it stays
    away = face_from(parsing, face_landmarks(z_nose=30.0))  # the nose behind the ears
    unsure = face_landmarks()
    unsure[[9, 10], 3] = 0.2
    assert np.array_equal(away, parsing) and np.array_equal(face_from(parsing, unsure), parsing)


@pytest.mark.skipif(not HAS_MEDIAPIPE, reason="OpenCV's contrib modules come with mediapipe (the [photo] extra)")
def test_class_borders_snap_to_the_photo_edges():
    """A soft border between two classes 6 px right of a sharp edge in the photo moves towards the
    edge, not past it; where the photo is flat the border stays where it was."""
    import torch

    from psc_engine.prepare import snap_to_edges

    image = np.zeros((64, 256, 3), np.uint8)
    image[:, 128:] = 255
    a = torch.sigmoid((134 - torch.arange(256).float()) / 6).expand(64, 256)
    probs = torch.zeros(7, 64, 256)
    probs[4], probs[5] = a, 1 - a
    border = lambda p: int(p.argmax(0)[32].eq(5).float().argmax())  # the first column of class 5
    assert border(probs) == 135
    assert 128 <= border(snap_to_edges(probs, image)) <= 132
    assert abs(border(snap_to_edges(probs, np.full((64, 256, 3), 128, np.uint8))) - 135) <= 1


# --- MediaPipe ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mp_prep():
    return PhotoPreparer.from_pretrained(None, "cpu", finder="mediapipe")


@needs_mediapipe
@pytest.mark.parametrize("h,w,x,y", [(480, 360, 50, 100), (900, 1200, 300, 500), (900, 1200, 50, 600), (1200, 900, 600, 50)])
def test_mediapipe_finds_the_rendered_person_placed_in_a_larger_photo(mp_prep, h, w, x, y):
    """The real model on a bundled render pasted into a larger photo, also where the person is
    under a third of the photo's size (MediaPipe's detector alone misses them there): prepare
    frames them full body, and the pose mapped back to the photo lands on the true joints."""
    image, truth = example("0001")
    p = mp_prep.prepare(in_photo(image, h, w, x, y))
    assert p.finder.startswith("MediaPipe Pose") and p.framing == "full body"
    assert p.image.shape == (256, 256, 3) and p.parsing.shape == (256, 256)
    ok, total = pck(from_frame(p.pose, p.window), truth + np.array([x, y], np.float32), 0.1 * 256)
    assert ok / total >= 0.9, (ok, total)
    assert p.seen >= 14 and 0.5 < p.visibility <= 1
    assert (p.parsing > 0).mean() > 0.1


@needs_mediapipe
def test_mediapipe_on_the_frame_as_it_is(mp_prep):
    """estimate (what test/animate use for a missing S0/P0): MediaPipe's pose on the 256x256
    frame itself, and the parsing within its person mask."""
    for stem in ("0000", "0001"):
        image, truth = example(stem)
        parsing, pose = mp_prep.estimate(image)
        ok, total = pck(pose, truth, 0.1 * 256)
        assert ok / total >= 0.9, (stem, ok, total)
        assert parsing.shape == (256, 256) and 0.1 < (parsing > 0).mean() < 0.6


@needs_mediapipe
def test_mediapipe_left_and_right_follow_a_mirrored_photo(mp_prep):
    """The mirrored photo is a photo of the mirrored pose: read it, mirror the pose back, and it
    must be the first reading (nothing swaps, nothing crosses)."""
    image, _ = example("0001")
    photo = in_photo(image)
    direct = mp_prep.finder(photo)
    mirrored = estimators.mirror_person(mp_prep.finder(np.ascontiguousarray(photo[:, ::-1])), photo.shape[1])
    seen = ~np.isnan(direct.pose).any(-1) & ~np.isnan(mirrored.pose).any(-1)
    assert seen.sum() >= 12
    assert np.linalg.norm(direct.pose[seen] - mirrored.pose[seen], axis=-1).max() < 0.05 * 256
    assert direct.pose[2, 0] < direct.pose[5, 0]  # facing the camera: the right shoulder on the image's left


@needs_mediapipe
def test_no_person_or_several_people_is_an_error(mp_prep):
    with pytest.raises(PSCError, match="no person"):
        mp_prep.prepare(np.full((300, 400, 3), 225, np.uint8))
    with pytest.raises(PSCError, match="no person"):
        mp_prep.prepare(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    a, b = example("0000")[0], example("0001")[0]
    with pytest.raises(PSCError, match="several people"):
        mp_prep.prepare(np.concatenate([a, b], 1))


@needs_mediapipe
@needs_mediapipe
def test_a_test_layout_photo_without_a_person_names_its_file(tmp_path):
    """`test` estimating a missing P0 on a photo where MediaPipe finds no one (the drawn figure):
    one line naming I0's file, nothing written."""
    from conftest import make_test_layout

    layout = make_test_layout(tmp_path / "t")
    (layout / "P0" / "0001.csv").unlink()
    r = run_cli("test", "--data_dir", layout, "--output_dir", tmp_path / "o", "--process_dir", tmp_path / "p")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith(f"psc: error: {layout / 'I0' / '0001.png'}: no person found")
    assert not (tmp_path / "o").exists() and not (tmp_path / "p").exists()


@needs_mediapipe
def test_prepare_command_says_which_finder_ran_and_how_sure(tmp_path):
    Image.fromarray(in_photo(example("0001")[0])).save(tmp_path / "photo.jpg", quality=95)
    r = run_cli("prepare", "--image", tmp_path / "photo.jpg", "--out", tmp_path / "prep", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith("prepared photo with MediaPipe Pose 0.10.21: ") and "/18 joints seen (mean visibility 0." in line
    assert "framing: full body" in line and "psc: warning" not in r.stderr
    assert Image.open(tmp_path / "prep" / "overlay" / "photo.png").size == (512, 256)


@needs_mediapipe
def test_prepare_refuses_two_people_in_one_line_and_writes_nothing(tmp_path):
    Image.fromarray(np.concatenate([example("0000")[0], example("0001")[0]], 1)).save(tmp_path / "two.png")
    r = run_cli("prepare", "--image", tmp_path / "two.png", "--out", tmp_path / "prep", "--device", "cpu")
    assert r.returncode == 2
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("psc: ")]
    assert errors == [f"psc: error: {tmp_path / 'two.png'}: several people in the photo; crop it to the one person to animate"]
    assert not (tmp_path / "prep").exists()


@needs_mediapipe
def test_evaluate_photo_on_a_test_layout_puts_both_finders_side_by_side(tmp_path):
    """The bundled example is a test layout with S0 and P0: MediaPipe + parser and the nets each
    get PCK, visibility, mirrored PCK and mIoU."""
    r = run_cli("evaluate", "--parts", "photo", "--data_dir", EXAMPLE, "--report_dir", tmp_path, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "photo_report.json").read_text())
    scores = report[str(EXAMPLE)]
    assert set(scores) == {"MediaPipe + parser", "project's nets"}
    for s in scores.values():
        assert s["photos"] == 2 and s["joints"] > 20 and s["refused"] == 0
        assert 0 <= s["pck@0.05"] <= s["pck@0.1"] <= 1 and 0 < s["miou"] <= 1 and len(s["iou"]) == 7
    assert scores["MediaPipe + parser"]["pck@0.1"] >= 0.8 and scores["project's nets"]["pck@0.1"] >= 0.7
    assert "MediaPipe + parser" in r.stdout and (tmp_path / "photo_sheet.png").is_file()


def test_evaluate_photo_on_real_photos_needs_a_report_dir(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's engine, run from an empty folder
    r = run_cli("evaluate", "--parts", "photo", "--data_dir", EXAMPLE, "--device", "cpu", cwd=tmp_path, env=env)
    assert r.returncode == 2 and "needs --report_dir: its sheet shows the photos" in r.stderr
    assert list(tmp_path.iterdir()) == []


# --- without MediaPipe --------------------------------------------------------------------------

def test_without_mediapipe_prepare_falls_back_to_the_nets_and_says_so(tmp_path):
    Image.fromarray(in_photo(example("0000")[0])).save(tmp_path / "photo.jpg", quality=95)
    r = subprocess.run(
        [sys.executable, "-c", NO_MEDIAPIPE, "prepare", "--image", str(tmp_path / "photo.jpg"), "--out",
         str(tmp_path / "prep"), "--device", "cpu"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("psc: warning:")]
    assert len(warnings) == 1 and "mediapipe is not installed" in warnings[0] and "keypoint net" in warnings[0]
    assert "prepared photo with the project's keypoint net: " in r.stdout
    p0 = read_pose_csv(tmp_path / "prep" / "P0" / "photo.csv")[1][0]
    assert (~np.isnan(p0).any(-1)).sum() >= 10
    for sub, ext in (("I0", "png"), ("S0", "png"), ("overlay", "png")):
        assert (tmp_path / "prep" / sub / f"photo.{ext}").is_file()


def test_asking_for_mediapipe_without_it_is_a_one_line_error(tmp_path):
    Image.fromarray(example("0000")[0]).save(tmp_path / "photo.png")
    r = subprocess.run(
        [sys.executable, "-c", NO_MEDIAPIPE, "prepare", "--finder", "mediapipe", "--image", str(tmp_path / "photo.png"),
         "--out", str(tmp_path / "prep"), "--device", "cpu"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("psc: error: mediapipe is not installed; install the photo extra")
    assert not (tmp_path / "prep").exists()

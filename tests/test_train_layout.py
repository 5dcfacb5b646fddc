"""The original train layout, in the original order: a drawn folder whose every view carries its
own name (in its colour, its parsing and its pose) shows that the reader, the batches and
`evaluate` pair views the way the original code does, and that older or geometry-only folders
are read, or refused, as the layout says."""
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from psc_engine import PSCError
from psc_engine.formats.images import write_png
from psc_engine.formats.poses import pose_maps, write_pose_csv
from psc_engine.formats.train_layout import VIEWS, TrainSet
from psc_engine.training.batches import draw_sample, pair_batch, pm_batch, shape_batch

# Written out here, not taken from the engine, so that the engine is checked against them.
ORIGINAL = ("right", "front", "left", "back", "mid0", "mid1", "mid2", "mid3")
TURN = ("right", "mid0", "front", "mid1", "left", "mid2", "back", "mid3")  # mid k between reference k and k + 1
TRANSITION_TS = ((0.2, 0.6), (0.3, 0.7), (0.1, 0.5), (0.4, 0.8))  # per transition, a different pair of t
# Each reference view to view k + 1 and mid k, and back: its four neighbours on the turn.
EXPECTED_PAIRS = {(TURN[i], TURN[(i + d) % 8]) for i in range(0, 8, 2) for d in (-2, -1, 1, 2)}
RECORD = {"layout": "train", "view_order": "original", "views": list(ORIGINAL), "images": True, "generator_version": 2}


def named_pose(view, person=0):
    """18 joints around a point on a circle at the view's place on the turn (45 degrees a step)."""
    a = np.deg2rad(45 * TURN.index(view))
    j = np.arange(18)
    x = 128 + 50 * np.cos(a) + 3 * (j % 6) - 7.5 + person
    y = 128 + 50 * np.sin(a) + 4 * (j // 6) - 4
    return np.stack([x, y], 1).astype(np.float32)


def named_colour(view):
    return 20 + 28 * TURN.index(view)


def view_of_pose(pose):
    return min(TURN, key=lambda v: np.nanmean(np.abs(pose - named_pose(v))))


def view_of_colour(image):
    return min(TURN, key=lambda v: abs(float(np.mean(image)) - named_colour(v)))


def view_of_parsing(parsing):
    ys, xs = np.nonzero(parsing == 4)
    centre = np.array([xs.mean(), ys.mean()])
    return min(TURN, key=lambda v: np.abs(named_pose(v).mean(0) - centre).sum())


def make_named_layout(root, n=2, images=True, record=RECORD, done=True):
    """A train-layout folder in the original order: view v's image is flat grey of v's shade, its
    parsing a square of class 4 where its pose is, its pose the one named_pose(v) gives; the
    in-between poses of transition k lie at their t on the straight line between its two views."""
    root = Path(root)
    for v in ORIGINAL:
        (root / f"{v}_sg").mkdir(parents=True, exist_ok=True)
        if images:
            (root / f"{v}_img").mkdir(exist_ok=True)
    (root / "joint").mkdir(exist_ok=True)
    (root / "joint_interpolation").mkdir(exist_ok=True)
    for i in range(n):
        stem = f"{i:04d}"
        for v in ORIGINAL:
            if images:
                Image.fromarray(np.full((256, 256, 3), named_colour(v), np.uint8)).save(root / f"{v}_img" / f"{stem}.jpg")
            parsing = np.zeros((256, 256), np.uint8)
            cx, cy = named_pose(v, i).mean(0).round().astype(int)
            parsing[cy - 8:cy + 8, cx - 8:cx + 8] = 4
            write_png(root / f"{v}_sg" / f"{stem}.png", parsing)
        poses = [named_pose(v, i) for v in ORIGINAL]
        write_pose_csv(root / "joint" / f"{stem}.csv", np.stack(poses))
        between, ts = [], []
        for k in range(4):
            a, b = named_pose(ORIGINAL[k], i), named_pose(ORIGINAL[(k + 1) % 4], i)
            for t in TRANSITION_TS[k]:
                between.append(a + t * (b - a))
                ts.append(t)
        write_pose_csv(root / "joint_interpolation" / f"{stem}.csv", np.stack(poses[:4] + between), [0.0] * 4 + ts)
        if done:
            (root / ".done").mkdir(exist_ok=True)
            (root / ".done" / stem).write_text(json.dumps({"files": []}))
    if record is not None:
        (root / "layout.json").write_text(json.dumps(record))
    return root


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    return make_named_layout(tmp_path_factory.mktemp("named") / "train")


def test_the_engine_reads_the_original_order():
    assert VIEWS == ORIGINAL


def test_each_view_gets_its_own_image_parsing_and_pose(named):
    data = TrainSet(named)
    assert data.stems == ["0000", "0001"] and data.has_images == [True, True]
    for i in range(2):
        poses, ts, interp = data.poses(i)
        for k, v in enumerate(VIEWS):
            assert view_of_colour(data.image(i, v)) == v
            assert view_of_parsing(data.parsing(i, v)) == v
            assert view_of_pose(poses[k]) == v
        np.testing.assert_allclose(ts[4:], np.ravel(TRANSITION_TS), atol=1e-6)


def test_pairs_are_the_original_neighbours(named):
    """pair_batch (CT) and shape_batch (AA) pair each view with its neighbours on the original
    turn, every neighbour pair comes up, and AA's batch is CT's without the photos."""
    data = TrainSet(named)
    seen = set()
    for step in range(40):
        b = pair_batch(data, np.random.default_rng(step), 4, 256, augment=False)
        for s_img, t_img in zip(b["src_image"], b["tgt_image"]):
            to_uint8 = lambda x: ((x.permute(1, 2, 0).numpy() + 1) * 127.5)
            pair = (view_of_colour(to_uint8(s_img)), view_of_colour(to_uint8(t_img)))
            assert pair in {(TURN[i], TURN[(i + d) % 8]) for i in range(8) for d in (-2, -1, 1, 2)}, pair
            seen.add(pair)
        shape = shape_batch(data, np.random.default_rng(step), 4, 256, augment=False)
        assert "src_image" not in shape and torch.equal(shape["src_labels"], b["src_labels"])
        assert torch.equal(shape["tgt_maps"], b["tgt_maps"])
    assert EXPECTED_PAIRS <= seen  # every reference view to view k + 1, mid k, and back


def test_pm_transitions_come_with_their_own_in_between_poses(named):
    """pm_batch's in-between maps are the poses of the transition's own rows: on this folder they
    lie at their t on the line between the transition's two reference views."""
    data = TrainSet(named)
    transitions = set()
    for step in range(12):
        b = pm_batch(data, np.random.default_rng(step), 4, 128, augment=False)
        for k in range(4):
            a, z = b["pose_a"][k], b["pose_b"][k]
            transitions.add((view_of_pose(a.numpy()), view_of_pose(z.numpy())))
            for t, target in ((b["t1"][k], b["target1"][k]), (b["t2"][k], b["target2"][k])):
                expected = pose_maps((a + t * (z - a))[None], size=128)[0]
                torch.testing.assert_close(target, expected, atol=2e-3, rtol=0)
    forward = {(ORIGINAL[k], ORIGINAL[(k + 1) % 4]) for k in range(4)}
    assert transitions == forward | {(b, a) for a, b in forward}


class RecordingPipe:
    """A stand-in for the chain that notes which source view went to which target pose."""

    cards = {}

    def __init__(self):
        self.pairs = set()

    def interpolate(self, a, b, ts):
        return a[None] + np.asarray(ts)[:, None, None] * (b - a)[None]

    def encode_reference(self, image, parsing, pose):
        assert view_of_colour(image) == view_of_pose(pose) == view_of_parsing(parsing)
        return image

    def render(self, image, target_poses, target_parsings=None):
        if target_parsings is None:
            self.pairs |= {(view_of_colour(image), view_of_pose(p.numpy())) for p in target_poses}
        n = len(target_poses)
        return torch.from_numpy(np.repeat(image[None], n, 0)), torch.zeros(n, 256, 256, dtype=torch.uint8)


def test_evaluate_pairs_each_reference_view_with_its_original_neighbours(named):
    from psc_engine.evaluation.evaluate import evaluate, pairs

    assert set(pairs()) == EXPECTED_PAIRS and len(pairs()) == 16
    pipe = RecordingPipe()
    report, _ = evaluate(pipe, named, log=lambda *a, **k: None)
    assert pipe.pairs == EXPECTED_PAIRS and report["meta"]["pairs"] == 32
    # the in-between poses lie on the line: a straight-line PM is exact only if each transition
    # is read with its own rows of joint_interpolation
    assert report["pm"]["linear_joint_error_px"] < 0.01 and report["pm"]["pm_joint_error_px"] < 0.01


def test_the_original_release_layout_is_read(tmp_path):
    data = TrainSet(make_named_layout(tmp_path / "orig", n=1, record=None, done=False))
    assert data.stems == ["0000"] and view_of_pose(data.poses(0)[0][0]) == "right"


@pytest.mark.parametrize("case", ["no layout.json", "older order", "older views"])
def test_an_older_generator_folder_is_refused_with_the_converter(tmp_path, case):
    record = {"no layout.json": None, "older order": {**RECORD, "view_order": "older"},
              "older views": {**RECORD, "views": ["front", "left", "back", "right", "mid0", "mid1", "mid2", "mid3"]}}[case]
    folder = make_named_layout(tmp_path / "old", n=1, record=record)
    with pytest.raises(PSCError, match="scripts/convert_layout.py"):
        TrainSet(folder)
    r = run_cli("train", "--data_dir", folder, "--model", "aa", "--out", tmp_path / "runs", "--steps", "1", "--quiet")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert str(folder) in r.stderr and "convert_layout.py" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_a_test_layout_record_is_refused(tmp_path):
    folder = make_named_layout(tmp_path / "t", n=1, record={**RECORD, "layout": "test", "views": None})
    with pytest.raises(PSCError, match="test-layout folder"):
        TrainSet(folder)


def pack(folder, shard, layout=True):
    with tarfile.open(shard, "w") as tar:
        for p in sorted(folder.rglob("*")):
            rel = str(p.relative_to(folder))
            if p.is_file() and not rel.startswith(".done") and (layout or rel != "layout.json"):
                tar.add(p, arcname=rel)
    return shard


def test_shards_say_their_layout(named, tmp_path):
    (tmp_path / "shards").mkdir()
    data = TrainSet(pack(named, tmp_path / "shards" / "shard-00000.tar"))
    assert data.stems == ["0000", "0001"] and view_of_colour(data.image(1, "mid3")) == "mid3"
    assert len(TrainSet(tmp_path / "shards")) == 2
    old = pack(named, tmp_path / "old.tar", layout=False)
    with pytest.raises(PSCError, match="shard without layout.json.*convert_layout.py"):
        TrainSet(old)


@pytest.fixture(scope="module")
def geometry(tmp_path_factory):
    return make_named_layout(tmp_path_factory.mktemp("geo") / "geo", n=3, images=False, record={**RECORD, "images": False})


def test_geometry_only_samples_feed_pm_and_aa(named, geometry):
    data = TrainSet([named, geometry])
    assert data.stems == ["0000", "0001", "0000", "0001", "0002"]  # the same stems in two folders are two people
    assert data.has_images == [True, True, False, False, False] and data.geometry_only == [2, 3, 4]
    assert view_of_parsing(data.parsing(4, "left")) == "left"
    with pytest.raises(PSCError, match="geometry-only"):
        data.image(2, "front")
    with pytest.raises(PSCError, match="geometry-only data.*cannot feed CT"):
        data.require_images("CT")
    for mix, allowed in ((1.0, {2, 3, 4}), (0.0, {0, 1}), (None, {0, 1, 2, 3, 4})):
        rng = np.random.default_rng(0)
        assert {draw_sample(data, rng, mix) for _ in range(200)} == allowed
    geo_only = TrainSet(geometry)
    b = shape_batch(geo_only, np.random.default_rng(0), 3, 128)
    assert b["tgt_labels"].shape == (3, 128, 128) and b["src_maps"].shape == (3, 18, 128, 128)
    assert pm_batch(geo_only, np.random.default_rng(0), 2, 128)["target1"].shape == (2, 18, 128, 128)
    with pytest.raises(PSCError, match="geometry-only"):
        pair_batch(geo_only, np.random.default_rng(0), 1, 128)


def test_train_mixes_geometry_only_data_into_aa_and_refuses_it_for_ct(named, geometry, tmp_path):
    from psc_engine.training.config import TrainConfig
    from psc_engine.training.train import train

    cfg = TrainConfig(data_dir=[str(named), str(geometry)], model="aa", out=str(tmp_path), steps=2, batch=2, base=4,
                      size=128, geometry_mix=0.25, quiet=True)
    assert train(cfg) == 2
    card = json.loads((tmp_path / "aa" / "weights" / "aa.json").read_text())
    assert card["geometry_mix"] == 0.25 and card["data"].startswith("5 train-layout samples (3 of them geometry-only)")
    r = run_cli("train", "--data_dir", named, geometry, "--model", "ct", "--out", tmp_path / "ct", "--steps", "1",
                "--quiet")
    assert r.returncode == 2 and "geometry-only" in r.stderr and str(geometry) in r.stderr
    r = run_cli("train", "--data_dir", named, "--model", "ct", "--geometry_mix", "0.5", "--out", tmp_path / "ct",
                "--steps", "1", "--quiet")
    assert r.returncode == 2 and "--geometry_mix only applies to --model pm or aa" in r.stderr


def test_the_rendered_fixture_turns_the_original_way():
    """In tests/fixtures/train_tiny (renders converted to the original layout) the `right` view
    shows the person turned to their right, facing image-left: their left eye is the one seen,
    and the nose lies left of the neck; the `left` view the other way round."""
    from psc_engine.formats.poses import JOINTS

    data = TrainSet(Path(__file__).parent / "fixtures" / "train_tiny")
    r_eye, l_eye = JOINTS.index("r_eye"), JOINTS.index("l_eye")
    for i in range(len(data)):
        poses = data.poses(i)[0]
        right, left = poses[VIEWS.index("right")], poses[VIEWS.index("left")]
        assert np.isnan(right[r_eye]).all() and not np.isnan(right[l_eye]).any()
        assert np.isnan(left[l_eye]).all() and not np.isnan(left[r_eye]).any()
    right = data.poses(0)[0][VIEWS.index("right")]
    assert right[0, 0] < right[1, 0]  # nose left of the neck

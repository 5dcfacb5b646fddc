"""`evaluate --parts real`: real photos to their own and to their mirrored pose, against copy and warp."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import EXAMPLE, REPO, run_cli
from psc_engine.errors import PSCError
from psc_engine.evaluation.baselines import piecewise_affine_warp
from psc_engine.evaluation.realphoto import METHODS, METRICS, PARSING_METHODS, TASKS, evaluate_real, load_photos
from psc_engine.formats.images import PALETTE, write_png
from psc_engine.formats.poses import flip_pose, write_pose_csv

NAN = float("nan")


def draw_person(pose):
    """(18, 2) pose -> (256, 256) parsing of a stick person, exactly mirrored when the pose is
    (integer joints; x -> 255 - x). Limbs skin, torso upper clothes, and a head that shows the face
    when the person faces the camera (their right shoulder on the image's left), else hair."""
    ys, xs = np.mgrid[0:256, 0:256].astype(np.float64)
    out = np.zeros((256, 256), np.uint8)

    def capsule(a, b, r, label):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        d = b - a
        t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / max(d @ d, 1e-9), 0, 1)
        out[(xs - a[0] - t * d[0]) ** 2 + (ys - a[1] - t * d[1]) ** 2 <= r * r] = label

    hips = (pose[8] + pose[11]) / 2
    capsule(pose[1], hips, 16, 4)
    capsule(pose[2], pose[5], 7, 4)
    for a, b in ((2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (11, 12), (12, 13)):
        capsule(pose[a], pose[b], 5, 3)
    capsule(pose[0], pose[0], 13, 2 if pose[2, 0] < pose[5, 0] else 1)
    return out


# Facing the camera, off-centre, right arm raised, left arm down: nothing about it is symmetric.
POSE = np.array([[110, 50], [110, 75], [90, 78], [72, 55], [66, 30], [130, 78], [140, 105], [146, 130],
                 [98, 135], [96, 175], [95, 215], [122, 135], [126, 175], [128, 215],
                 [NAN, NAN], [NAN, NAN], [NAN, NAN], [NAN, NAN]], np.float32)


class DrawingChain:
    """Stands in for the Pipeline: draws the person of each target pose (its own parsing, coloured)."""

    cards = {}

    def encode_reference(self, image, parsing, pose):
        return None

    def render(self, reference, target_poses, target_parsings=None):
        labels = (np.asarray(target_parsings) if target_parsings is not None
                  else np.stack([draw_person(p) for p in target_poses.numpy()]))
        return torch.from_numpy(PALETTE[labels]), torch.from_numpy(labels)


def write_sample(root, stem, image, parsing, pose):
    for name in ("I0", "S0", "P0", "P1"):
        (root / name).mkdir(parents=True, exist_ok=True)
    write_png(root / "I0" / f"{stem}.png", image)
    if parsing is not None:
        write_png(root / "S0" / f"{stem}.png", parsing)
    write_pose_csv(root / "P0" / f"{stem}.csv", pose[None])
    write_pose_csv(root / "P1" / f"{stem}.csv", pose[None])


def test_mirror_target_is_the_mirrored_photo_with_left_and_right_swapped(tmp_path):
    """A chain that draws each target pose exactly is perfect on the mirror task only if the target
    pose swaps left and right: mirroring x alone turns the person round (hair where the face was)."""
    parsing = draw_person(POSE)
    np.testing.assert_array_equal(draw_person(flip_pose(POSE)), parsing[:, ::-1])  # the drawing mirrors exactly
    unswapped = POSE.copy()
    unswapped[:, 0] = 255 - unswapped[:, 0]
    assert (draw_person(unswapped) != parsing[:, ::-1]).sum() > 300  # a mirror without the swap is seen
    write_sample(tmp_path / "drawn", "0000", PALETTE[parsing], parsing, POSE)

    report, sheets = evaluate_real(DrawingChain(), [tmp_path / "drawn"], log=lambda *a, **k: None)
    row = report["overall"]
    for t in TASKS:
        assert row[t]["ours"]["ssim"] > 0.9999 and row[t]["ours"]["ssim_person"] > 0.9999
        assert row[t]["ours"]["miou"] == 1 and row[t]["ours_true_parsing"]["ssim"] > 0.9999
    assert row["identity"]["copy"]["ssim"] > 0.9999 and row["identity"]["copy"]["miou"] == 1
    assert row["identity"]["warp"]["miou"] == 1  # the warp onto the same pose moves nothing
    for m in ("copy", "warp"):  # the mirrored person is not the photo: both baselines fall short
        assert row["mirror"][m]["ssim"] < 0.95 and row["mirror"][m]["miou"] < 0.9
    assert sheets["contact_sheet_drawn"].shape == (256, 7 * 256, 3)


def test_warping_a_parsing_keeps_its_labels():
    parsing = draw_person(POSE)
    target = POSE.copy()
    target[4] = [150, 30]  # the raised forearm swings across
    warped = piecewise_affine_warp(parsing, POSE, target, order=0)
    assert warped.shape == (256, 256) and set(np.unique(warped)) <= set(np.unique(parsing))
    assert (warped != parsing).any()


def test_report_has_a_row_per_folder_task_and_method(tmp_path):
    """Two folders, one without S0 (estimated, and labelled so): every row and metric is there."""
    parsing = draw_person(POSE)
    write_sample(tmp_path / "a", "0000", PALETTE[parsing], parsing, POSE)
    write_sample(tmp_path / "a", "0001", PALETTE[parsing][:, ::-1].copy(), parsing[:, ::-1].copy(), flip_pose(POSE))
    write_sample(tmp_path / "b", "0000", PALETTE[parsing], None, POSE)

    def complete(image, parsing, pose):  # the photo nets' stand-in: reads the drawing's colours back
        assert parsing is None and pose is not None
        dist = ((image[:, :, None].astype(int) - PALETTE[None, None].astype(int)) ** 2).sum(-1)  # (256, 256, 7)
        return image, dist.argmin(-1).astype(np.uint8), pose

    with pytest.raises(PSCError, match="no S0"):
        load_photos([tmp_path / "b"])
    said = []
    report, sheets = evaluate_real(DrawingChain(), [tmp_path / "a", tmp_path / "b"], complete=complete,
                                   log=lambda *a, **k: said.append(a[0]))
    assert any("b: 1 of 1 photos lack S0" in line for line in said)
    assert set(report["folders"]) == {"a", "b"}
    assert report["folders"]["a"]["s0"] == {"label": 2, "estimated": 0}
    assert report["folders"]["b"]["s0"] == {"label": 0, "estimated": 1}
    assert report["overall"]["photos"] == 3 and len(report["photos"]) == 3
    for row in [*report["folders"].values(), report["overall"]]:
        for t in TASKS:
            assert set(row[t]) == set(METHODS)
            for m in METHODS:
                assert set(METRICS) <= set(row[t][m]) and ("miou" in row[t][m]) == (m in PARSING_METHODS)
    assert report["folders"]["b"]["mirror"]["ours"]["miou"] == 1  # the estimate is this drawing's parsing
    assert {k: v.shape for k, v in sheets.items()} == {"contact_sheet_a": (512, 1792, 3), "contact_sheet_b": (256, 1792, 3)}


@pytest.fixture(scope="module")
def chain_weights(tmp_path_factory, tiny_weights):
    """The tiny untrained chain with the shipped photo nets (a missing S0 needs a parser that finds a person)."""
    folder = tmp_path_factory.mktemp("chain_weights")
    for name in ("pm", "aa", "ct"):
        for ext in (".json", ".safetensors"):
            shutil.copy(tiny_weights / f"{name}{ext}", folder)
    for name in ("pose", "parsing"):
        for ext in (".json", ".safetensors"):
            shutil.copy(REPO / "weights" / f"{name}{ext}", folder)
    return folder


def test_evaluate_real_command_on_the_bundled_example(chain_weights, tmp_path):
    """Test-layout folders are found to be real photos; several folders in one run; a missing S0
    is estimated; the report, the table and a contact sheet per folder are written."""
    shutil.copytree(EXAMPLE, tmp_path / "labelled")
    shutil.copytree(EXAMPLE, tmp_path / "unlabelled")
    shutil.rmtree(tmp_path / "unlabelled" / "S0")
    rep = tmp_path / "rep"
    r = run_cli("evaluate", "--data_dir", tmp_path / "labelled", tmp_path / "unlabelled", "--weights", chain_weights,
                "--report_dir", rep, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    report = json.loads((rep / "report.json").read_text())
    assert report["meta"]["mode"] == "real" and report["meta"]["photos"] == 4
    assert report["folders"]["unlabelled"]["s0"] == {"label": 0, "estimated": 2}
    for row in [*report["folders"].values(), report["overall"]]:
        assert row["identity"]["copy"]["ssim"] > 0.9999  # the photo is its own pose's truth
        for t in TASKS:
            for m in METHODS:
                assert 0 <= row[t][m]["ssim"] <= 1
    table = (rep / "table.txt").read_text()
    assert table.strip() in r.stdout and "overall" in table and "estimate" in table
    assert len(table.splitlines()) == 2 + 3 * len(TASKS) * len(METHODS) + 1
    for name in ("labelled", "unlabelled"):
        assert Image.open(rep / f"contact_sheet_{name}.png").size == (7 * 256, 2 * 256)


def test_evaluate_real_refuses_without_report_dir_or_with_other_parts(tmp_path):
    r = run_cli("evaluate", "--data_dir", EXAMPLE, "--parts", "real", cwd=tmp_path)
    assert r.returncode == 2 and "--report_dir" in r.stderr and not any(tmp_path.iterdir())
    r = run_cli("evaluate", "--data_dir", EXAMPLE, "--parts", "real", "psc", "--report_dir", tmp_path / "rep")
    assert r.returncode == 2 and "runs alone" in r.stderr and not (tmp_path / "rep").exists()

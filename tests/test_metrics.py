"""Evaluation metrics against values computed by hand, and the evaluate command end to end."""
import json
import math
from pathlib import Path

import numpy as np
import torch

from conftest import make_train_layout, run_cli
from psc_engine.evaluation.baselines import piecewise_affine_warp
from psc_engine.evaluation.bench import example_inputs
from psc_engine.evaluation.metrics import confusion, iou_per_class, masked_l1, miou, pck, psnr, ssim


def test_ssim_of_constant_images_by_hand():
    a = torch.full((1, 3, 32, 32), 0.5)
    b = torch.full((1, 3, 32, 32), 0.25)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    expected = (2 * 0.5 * 0.25 + c1) / (0.5 ** 2 + 0.25 ** 2 + c1) * c2 / c2
    assert abs(float(ssim(a, b, 1.0)) - expected) < 1e-5
    assert abs(float(ssim(a, a, 1.0)) - 1) < 1e-6


def test_ssim_is_float32_under_bf16_autocast():
    """A training step under bf16 autocast (CUDA, or `train --precision bf16`) computes its SSIM term
    in float32: in bfloat16 the local variances E[a^2] - E[a]^2 cancel to noise (0.30 for 0.08)."""
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 64, 64, generator=g) * 2 - 1, 5, 1, 2)  # smooth, in [-1, 1]
    b = a + 0.05 * torch.randn(a.shape, generator=g)
    plain = ssim(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = ssim(a, b)
    assert under.dtype == torch.float32
    torch.testing.assert_close(under, plain, atol=1e-6, rtol=1e-6)


def test_psnr_and_masked_l1_by_hand():
    a = torch.zeros(1, 1, 4, 4)
    b = torch.zeros(1, 1, 4, 4)
    b[0, 0, 0, 0] = 0.4  # one pixel off by 0.4 -> MSE 0.01
    assert abs(float(psnr(a, b, 1.0)) - 10 * math.log10(1 / 0.01)) < 1e-4
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, 0, :2] = 1
    assert abs(float(masked_l1(a, b, mask)) - 0.2) < 1e-6
    assert abs(float(psnr(a, b, 1.0, mask)) - 10 * math.log10(1 / 0.08)) < 1e-4


def test_miou_by_hand():
    truth = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    conf = confusion(pred, truth, classes=7)
    # class 0: inter 1, union 2 -> 0.5; class 1: inter 2, union 3 -> 2/3
    assert abs(miou(conf) - (0.5 + 2 / 3) / 2) < 1e-9
    iou = iou_per_class(conf)
    assert abs(float(iou[0]) - 0.5) < 1e-9 and abs(float(iou[1]) - 2 / 3) < 1e-9
    assert iou[2:].isnan().all()  # classes neither side has are left out of the mean


def test_pck_by_hand():
    nan = float("nan")
    truth = np.array([[[10, 10], [50, 50], [nan, nan], [100, 100]]], dtype=float)
    pred = np.array([[[13, 14], [50, 70], [30, 30], [nan, nan]]], dtype=float)
    # distances: 5 (in at 12.8 px), 20 (out at 12.8, in at 25.6), a joint the truth lacks (not counted),
    # a joint the prediction lost (counted as wrong)
    assert pck(pred, truth, 12.8) == (1, 3)
    assert pck(pred, truth, 25.6) == (2, 3)


def test_affine_baseline_moves_a_shifted_skeleton():
    image, _, pose, _ = example_inputs(1)
    moved = pose.copy()
    moved[:, 0] += 16
    out = piecewise_affine_warp(image, pose, moved)
    # Inside the skeleton's hull every triangle moves rigidly by 16 px.
    np.testing.assert_array_equal(out[64:120, 130:146], image[64:120, 114:130])


def test_the_warp_at_a_smaller_size_samples_the_same_map():
    """AA's warp input at its 128 grid: the 256 warp sampled at the 128 pixels' centres, so each
    label agrees with one of the 256 warp's labels of the same 2x2 block; the identity warp
    gives the parsing back."""
    from psc_engine.formats.images import read_parsing
    from psc_engine.formats.poses import read_pose_csv
    from psc_engine.nets.warp import warped_onehot

    ex = Path(__file__).parent.parent / "psc_engine" / "example" / "test"
    parsing = read_parsing(ex / "S0" / "0000.png")
    p0, p1 = (read_pose_csv(ex / k / "0000.csv")[1][0] for k in ("P0", "P1"))
    full = piecewise_affine_warp(parsing, p0, p1, order=0)
    small = warped_onehot(parsing, p0, p1[None], 128)
    assert small.shape == (1, 7, 128, 128) and torch.all(small.sum(1) == 1)
    labels = small[0].argmax(0).numpy()
    blocks = full.reshape(128, 2, 128, 2).transpose(0, 2, 1, 3).reshape(128, 128, 4)
    assert (blocks == labels[..., None]).any(-1).mean() > 0.99
    assert (labels != parsing[::2, ::2]).mean() > 0.02  # it did move
    same = warped_onehot(parsing, p0, p0[None], 256)[0].argmax(0).numpy()
    assert (same == parsing).mean() > 0.999


def test_evaluate_command(tiny_weights, tmp_path):
    data = make_train_layout(tmp_path / "data", n=1)
    r = run_cli("evaluate", "--data_dir", data, "--weights", tiny_weights, "--report_dir", tmp_path / "rep", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["meta"]["pairs"] == 16
    for m in ("ours", "ours_true_parsing", "copy", "affine"):
        assert 0 <= report[m]["ssim"] <= 1
    assert 0 <= report["ours"]["miou"] <= 1
    assert "PM joint error" in r.stdout
    assert (tmp_path / "rep" / "contact_sheet.png").is_file()
    photo = report["photo"]
    assert report["meta"]["views"] == 8
    for key in ("pck@0.05", "pck@0.1", "visibility_accuracy", "miou"):
        assert 0 <= photo[key] <= 1
    assert photo["pck@0.05"] <= photo["pck@0.1"]
    assert "PCK@0.1" in r.stdout and (tmp_path / "rep" / "photo_sheet.png").is_file()


def test_evaluate_photo_part_scores_the_truth_perfectly(tmp_path):
    """A 'photo net' that returns the true labels scores PCK 1 and mIoU 1: the scoring is aligned."""
    from psc_engine.formats.train_layout import VIEWS, TrainSet
    from psc_engine.evaluation.evaluate import evaluate

    data = make_train_layout(tmp_path / "data", n=1)
    ds = TrainSet(data)
    truth = {ds.image(0, v).tobytes(): (ds.parsing(0, v), ds.poses(0)[0][k]) for k, v in enumerate(VIEWS)}

    class Oracle:
        cards = {}
        def parse_batch(self, images):
            return np.stack([truth[im.tobytes()][0] for im in images])
        def pose_batch(self, images):
            return np.stack([truth[im.tobytes()][1] for im in images])
        def estimate_batch(self, images):
            return self.parse_batch(images), self.pose_batch(images)

    report, sheets = evaluate(None, data, prep=Oracle(), log=lambda *a, **k: None)
    assert report["photo"]["pck@0.05"] == 1 and report["photo"]["miou"] == 1
    assert report["photo"]["visibility_accuracy"] == 1
    assert "ours" not in report and sheets["photo_sheet"] is not None

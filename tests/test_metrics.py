"""Evaluation metrics against values computed by hand, and the evaluate command end to end."""
import json
import math

import numpy as np
import torch

from conftest import make_train_layout, run_cli
from psc_engine.baselines import piecewise_affine_warp
from psc_engine.bench import example_inputs
from psc_engine.metrics import confusion, masked_l1, miou, psnr, ssim


def test_ssim_of_constant_images_by_hand():
    a = torch.full((1, 3, 32, 32), 0.5)
    b = torch.full((1, 3, 32, 32), 0.25)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    expected = (2 * 0.5 * 0.25 + c1) / (0.5 ** 2 + 0.25 ** 2 + c1) * c2 / c2
    assert abs(float(ssim(a, b, 1.0)) - expected) < 1e-5
    assert abs(float(ssim(a, a, 1.0)) - 1) < 1e-6


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


def test_affine_baseline_moves_a_shifted_skeleton():
    image, _, pose, _ = example_inputs(1)
    moved = pose.copy()
    moved[:, 0] += 16
    out = piecewise_affine_warp(image, pose, moved)
    # Inside the skeleton's hull every triangle moves rigidly by 16 px.
    np.testing.assert_array_equal(out[64:120, 130:146], image[64:120, 114:130])


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

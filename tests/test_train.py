"""Training: losses go down, a killed run resumes exactly, augmentation keeps labels right."""
import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_train_layout, run_cli
from psc_engine.training.augment import apply_affine, flip_batch
from psc_engine import PSCError
from psc_engine.formats.train_layout import TrainSet
from psc_engine.formats.poses import JOINTS


FIXTURE = Path(__file__).parent / "fixtures" / "train_tiny"  # 2 rendered people, made by scripts/make_dataset.py


@pytest.fixture(scope="module")
def train_dir():
    return FIXTURE


def losses(run, model):
    with open(run / model / "losses.csv") as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


@pytest.mark.parametrize("model", ["aa", "ct"])
def test_a_few_steps_lower_the_loss(train_dir, tmp_path, model):
    r = run_cli("train", "--data_dir", train_dir, "--model", model, "--out", tmp_path, "--steps", "40",
                "--batch", "2", "--base", "4", "--size", "128", "--lr", "2e-3", "--no_augment", "--quiet")
    assert r.returncode == 0, r.stderr
    values = [v for _, v in losses(tmp_path, model)]
    assert len(values) == 40
    assert np.mean(values[-5:]) < 0.9 * np.mean(values[:5]), values
    assert (tmp_path / model / "losses.png").is_file()
    assert (tmp_path / model / "weights" / f"{model}.safetensors").is_file()


def test_pm_learns_a_fixed_batch(train_dir):
    """PM starts at the straight line (its correction is zero); on one fixed batch of real
    transitions a few optimiser steps must lower its loss below that starting point."""
    from psc_engine.training.batches import pm_batch
    from psc_engine.training.losses import pm_losses
    from psc_engine.nets.pm import PMNet

    torch.manual_seed(0)
    net = PMNet(base=4)
    batch = pm_batch(TrainSet(train_dir), np.random.default_rng(0), 2, 128, augment=False)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    values = []
    for _ in range(12):
        loss, _ = pm_losses(net, batch["maps_a"], batch["maps_b"], batch["t1"], batch["t2"], batch["target1"],
                            batch["target2"], batch["joints_ok"], batch["pose_a"], batch["pose_b"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(loss.item())
    assert all(b < a for a, b in zip(values, values[1:])), values  # every step lowers it


def test_resume_after_kill_continues_exactly(train_dir, tmp_path):
    common = ["--data_dir", train_dir, "--model", "aa", "--steps", "12", "--batch", "1", "--base", "4",
              "--size", "128", "--quiet"]
    straight = tmp_path / "straight"
    assert run_cli("train", *common, "--out", straight).returncode == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "psc_engine", "train", *map(str, common), "--out", str(killed),
                             "--checkpoint_minutes", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "aa" / "checkpoint.pt"
    deadline = time.time() + 120
    log = killed / "aa" / "losses.csv"  # written just after each checkpoint
    while time.time() < deadline and not (ckpt.exists() and log.exists() and len(losses(killed, "aa")) >= 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = torch.load(ckpt, weights_only=True)["step"]
    assert 4 <= at_kill < 12
    r = run_cli("train", *common, "--out", killed, "--resume")
    assert r.returncode == 0, r.stderr
    a, b = losses(straight, "aa"), losses(killed, "aa")
    assert [s for s, _ in b] == list(range(1, 13))
    np.testing.assert_allclose([v for _, v in b], [v for _, v in a], rtol=1e-4)


def test_sigterm_checkpoints_the_last_step(train_dir, tmp_path):
    """A polite stop (SIGTERM, e.g. a job scheduler's) loses no steps: the run checkpoints the
    step it was on and exits 0; --resume then carries on from there."""
    common = ["--data_dir", train_dir, "--model", "aa", "--steps", "400", "--batch", "1", "--base", "4",
              "--size", "128"]
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "psc_engine", "train", *map(str, common), "--out", str(out),
                             "--checkpoint_minutes", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and "step 3/" not in (proc.stderr.read(200) or ""):
        pass
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "(SIGTERM)" in err
    step = torch.load(out / "aa" / "checkpoint.pt", weights_only=True)["step"]
    assert 3 <= step < 400  # no periodic checkpoint was due: this one came from the signal
    assert [s for s, _ in losses(out, "aa")] == list(range(1, step + 1))


@pytest.mark.parametrize("model", ["pose", "parsing"])
def test_photo_nets_learn_on_a_rendered_sample(train_dir, model):
    """The keypoint net and the parser: a few steps on one fixed batch lower the loss."""
    from psc_engine.training.batches import photo_batch
    from psc_engine.formats.train_layout import TrainSet
    from psc_engine.training.losses import keypoint_losses, parser_losses
    from psc_engine.weights import build_net

    torch.manual_seed(0)
    net = build_net(model, {"base": 4})
    batch = photo_batch(TrainSet(train_dir), np.random.default_rng(0), 2, augment=False)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    values = []
    for _ in range(16):
        if model == "pose":
            loss = keypoint_losses(net, batch["image"], batch["heatmaps"], batch["visible"])[0]
        else:
            loss = parser_losses(net(batch["image"]), batch["labels"])[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(loss.item())
    assert values[-1] < 0.9 * values[0], values


def test_existing_checkpoint_needs_resume(train_dir, tmp_path):
    args = ["train", "--data_dir", train_dir, "--model", "aa", "--out", tmp_path, "--steps", "1", "--batch", "1",
            "--base", "4", "--size", "128", "--quiet"]
    assert run_cli(*args).returncode == 0
    r = run_cli(*args)
    assert r.returncode == 2 and "--resume" in r.stderr


def test_flip_swaps_joints_and_keeps_classes():
    images = torch.zeros(1, 3, 256, 256)
    images[0, :, :, :10] = 1  # a bright stripe on the left edge
    labels = torch.zeros(1, 256, 256, dtype=torch.long)
    labels[0, :, :10] = 4
    pose = torch.full((1, 18, 2), float("nan"))
    pose[0, JOINTS.index("r_wrist")] = torch.tensor([5.0, 100.0])
    fi, fl, fp = flip_batch(images, labels, pose)
    assert fi[0, 0, 0, -1] == 1 and fi[0, 0, 0, 0] == 0
    assert fl[0, 0, -1] == 4 and set(fl.unique().tolist()) == {0, 4}
    np.testing.assert_allclose(fp[0, JOINTS.index("l_wrist")].numpy(), [250.0, 100.0])
    assert torch.isnan(fp[0, JOINTS.index("r_wrist")]).all()


def test_affine_keeps_joint_on_its_pixel():
    """A joint marked in the parsing stays on the same label after scale + shift."""
    labels = torch.zeros(1, 256, 256, dtype=torch.long)
    labels[0, 60:64, 90:94] = 2
    images = labels[:, None].float().expand(1, 3, 256, 256).contiguous()
    pose = torch.full((1, 18, 2), float("nan"))
    pose[0, 0] = torch.tensor([91.5, 61.5])
    _, lab, p = apply_affine(images, labels, pose, np.array([[1.1, 7.0, -5.0]]))
    x, y = p[0, 0].round().long().tolist()
    assert lab[0, y, x] == 2


def test_trainset_ignores_incomplete_samples(train_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(train_dir, copy)
    assert TrainSet(copy).stems == ["0000", "0001"]
    (copy / "back_sg" / "0001.png").unlink()  # a file missing
    assert TrainSet(copy).stems == ["0000"]
    (copy / ".done" / "0000").unlink()  # all files there, but the generator never marked it complete
    with pytest.raises(PSCError, match="no complete train-layout samples"):
        TrainSet(copy)
    drawn = make_train_layout(tmp_path / "drawn", n=1)  # a layout without markers (the original's)
    assert TrainSet(drawn).stems == ["0000"]


@pytest.mark.parametrize("model", ["pm", "ct"])
def test_torchrun_data_parallel(train_dir, tmp_path, model):
    """Two processes under torchrun (gloo on CPU): DistributedDataParallel trains, rank 0 writes."""
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "psc_engine", "train",
                        "--data_dir", str(train_dir), "--model", model, "--out", str(tmp_path), "--steps", "2",
                        "--batch", "1", "--base", "4", "--size", "128", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [s for s, _ in losses(tmp_path, model)] == [1, 2]
    assert torch.load(tmp_path / model / "checkpoint.pt", weights_only=True)["step"] == 2


def test_photo_nets_first_stage_at_128_runs_at_its_size(train_dir, tmp_path):
    """A 128x128 first stage of the photo nets: the batch is 128 (heatmaps 32), the card says 128,
    and PhotoPreparer feeds each net the size it was trained at, answering in 256-frame terms."""
    from psc_engine.training.batches import photo_batch
    from psc_engine.formats.train_layout import TrainSet
    from psc_engine.prepare import PhotoPreparer
    from psc_engine.weights import make_placeholder

    b = photo_batch(TrainSet(train_dir), np.random.default_rng(0), 2, size=128)
    assert b["image"].shape[-1] == 128 and b["labels"].shape[-1] == 128 and b["heatmaps"].shape[-1] == 32
    for net in ("pose", "parsing"):
        r = run_cli("train", "--data_dir", train_dir, "--model", net, "--out", tmp_path / "runs", "--steps", "1",
                    "--batch", "1", "--base", "4", "--size", "128", "--quiet")
        assert r.returncode == 0, r.stderr
    weights = tmp_path / "w"
    make_placeholder(weights, base=4)
    for net in ("pose", "parsing"):
        for f in (tmp_path / "runs" / net / "weights").iterdir():
            (weights / f.name).write_bytes(f.read_bytes())
    prep = PhotoPreparer.from_pretrained(weights, "cpu")
    assert prep.cards["parsing"]["size"] == 128
    image = TrainSet(train_dir).image(0, "front")
    assert prep.parse(image).shape == (256, 256)
    pose = prep.pose(image)
    assert pose.shape == (18, 2) and np.all((np.nan_to_num(pose, nan=0) >= 0) & (np.nan_to_num(pose, nan=0) < 256))


def test_ct_can_read_the_parsings_aa_predicts(train_dir):
    """--shape_from: on the chosen share of items CT's target parsing is AA's prediction (as in
    the chain); everywhere else, and in the losses, it is the truth."""
    from psc_engine.nets.aa import AANet
    from psc_engine.training.batches import pair_batch
    from psc_engine.nets.ct import CTNet
    from psc_engine.training.losses import RandomFeatures
    from psc_engine.training.train import step_loss

    torch.manual_seed(0)
    aa, ct, seen = AANet(base=4).eval(), CTNet(base=4), []
    ct.register_forward_pre_hook(lambda net, args: seen.append(args[3].clone()))
    batch = pair_batch(TrainSet(train_dir), np.random.default_rng(0), 2, 128, augment=False)
    with torch.no_grad():
        predicted = aa(batch["src_onehot"], batch["src_maps"], batch["tgt_maps"]).softmax(1)  # AA's class probabilities
    assert not torch.equal(predicted, batch["tgt_onehot"])  # an untrained AA gets the parsing wrong
    for mix, expected in ((0.0, batch["tgt_onehot"]), (1.0, predicted)):
        loss, _ = step_loss("ct", ct, batch, RandomFeatures(), aa, mix)
        assert torch.isfinite(loss)
        assert torch.equal(seen[-1], expected)


def test_ssim_weight_scales_the_ssim_term_only(train_dir, tmp_path):
    """--ssim_weight w: CT's total loss grows by (w - 1) times its SSIM term, every other term
    unchanged; it is CT's option only."""
    from psc_engine.training.batches import pair_batch
    from psc_engine.nets.ct import CTNet
    from psc_engine.training.losses import RandomFeatures
    from psc_engine.training.train import step_loss

    torch.manual_seed(0)
    ct = CTNet(base=4)
    batch = pair_batch(TrainSet(train_dir), np.random.default_rng(0), 2, 128, augment=False)
    (one, terms), (three, terms3) = (step_loss("ct", ct, batch, RandomFeatures(), ssim_weight=w) for w in (1.0, 3.0))
    assert terms == terms3 and terms["ssim"] > 0.1  # an untrained CT is far from the target
    assert three.item() == pytest.approx(one.item() + 2 * terms["ssim"], rel=1e-5)
    r = run_cli("train", "--data_dir", train_dir, "--model", "aa", "--out", tmp_path, "--steps", "1",
                "--ssim_weight", "3", "--quiet")
    assert r.returncode != 0 and "--ssim_weight only applies to --model ct" in r.stderr
    # the card records the weight, and a resume without it (plain losses from there) drops it...
    args = ["train", "--data_dir", train_dir, "--model", "ct", "--out", tmp_path, "--batch", "1", "--base", "4",
            "--size", "128", "--quiet"]
    card = tmp_path / "ct" / "weights" / "ct.json"
    assert run_cli(*args, "--steps", "1", "--ssim_weight", "3").returncode == 0
    assert json.loads(card.read_text())["ssim_weight"] == 3.0
    r = run_cli(*args, "--steps", "2", "--resume")
    assert r.returncode == 0, r.stderr
    assert "ssim_weight" not in json.loads(card.read_text())
    # ...and says so, even with --quiet, since the run no longer goes on as it began
    assert "with ssim_weight none; its last run had 3.0" in r.stderr
    r = run_cli(*args, "--steps", "3", "--resume")
    assert r.returncode == 0 and "note:" not in r.stderr  # the same options again: nothing to say


def test_shape_from_is_for_ct_only(train_dir, tmp_path):
    r = run_cli("train", "--data_dir", train_dir, "--model", "aa", "--out", tmp_path, "--steps", "1", "--batch", "1",
                "--base", "4", "--size", "128", "--shape_from", tmp_path, "--quiet")
    assert r.returncode != 0 and "--shape_from only applies to --model ct" in r.stderr


def test_aa_with_the_warp_input_starts_from_an_aa_without_it(train_dir, tiny_weights, tmp_path):
    """--warp: AA reads the warped source parsing too (its batches then carry it, one-hot at the
    training size); --init from an AA without it widens that net; the card says warp; it is
    AA's option only."""
    from psc_engine.training.batches import shape_batch

    assert "tgt_warped" not in shape_batch(TrainSet(train_dir), np.random.default_rng(0), 2, 128)  # only when asked
    b = shape_batch(TrainSet(train_dir), np.random.default_rng(0), 2, 128, warp=True)
    assert b["tgt_warped"].shape == (2, 7, 128, 128) and torch.all(b["tgt_warped"].sum(1) == 1)
    agree = (b["tgt_warped"].argmax(1) == b["tgt_labels"]).float().mean()
    assert 0.5 < agree < 1  # a fair first guess of the target shape, not the answer
    r = run_cli("train", "--data_dir", train_dir, "--model", "aa", "--warp", "--init", tiny_weights, "--out", tmp_path,
                "--steps", "2", "--batch", "1", "--base", "4", "--size", "128", "--quiet")
    assert r.returncode == 0, r.stderr
    card = json.loads((tmp_path / "aa" / "weights" / "aa.json").read_text())
    assert card["config"]["warp"] is True and card["init"]["from"] == str(tiny_weights)
    r = run_cli("train", "--data_dir", train_dir, "--model", "ct", "--warp", "--out", tmp_path / "ct", "--steps", "1",
                "--quiet")
    assert r.returncode != 0 and "--warp only applies to --model aa" in r.stderr


def test_ema_exports_the_running_mean_and_resumes_it(train_dir, tmp_path):
    """--ema 0.5: after step 1 the export is step 1's weights; after a resumed step 2 it is the mean
    of steps 1 and 2 (the average's state travels in the checkpoint)."""
    from psc_engine.weights import load_weights

    common = ["--data_dir", train_dir, "--model", "aa", "--batch", "1", "--base", "4", "--size", "128",
              "--lr", "1e-2", "--ema", "0.5", "--out", tmp_path, "--quiet"]
    ckpt = tmp_path / "aa" / "checkpoint.pt"

    def weights():
        net, card = load_weights(tmp_path / "aa" / "weights", "aa")
        return net.state_dict(), card

    assert run_cli("train", *common, "--steps", "1").returncode == 0
    step1 = torch.load(ckpt, weights_only=True)["model"]
    exported, card = weights()
    assert card["ema"] == 0.5
    for k, v in step1.items():
        torch.testing.assert_close(exported[k], v.half().float())
    r = run_cli("train", *common, "--steps", "2", "--resume")
    assert r.returncode == 0, r.stderr
    step2 = torch.load(ckpt, weights_only=True)["model"]
    exported, _ = weights()
    moved = 0
    for k, v in step2.items():
        torch.testing.assert_close(exported[k], ((step1[k] + v) / 2).half().float(), atol=1e-3, rtol=1e-3)
        moved += int(not torch.equal(step1[k], v))
    assert moved > 0  # the second step changed the weights, so the mean differs from both


def test_ema_decay_must_lie_in_0_1(train_dir, tmp_path):
    r = run_cli("train", "--data_dir", train_dir, "--model", "aa", "--out", tmp_path, "--steps", "1",
                "--ema", "1.5", "--quiet")
    assert r.returncode != 0 and "--ema must lie in (0, 1)" in r.stderr


def test_resume_with_another_width_is_one_line(train_dir, tmp_path):
    """A resume whose --base differs from the checkpoint's says so in one line (it used to fail
    with load_state_dict's traceback), and leaves the checkpoint as it was."""
    common = ["--data_dir", train_dir, "--model", "aa", "--out", tmp_path, "--batch", "1", "--size", "128", "--quiet"]
    assert run_cli("train", *common, "--steps", "1", "--base", "4").returncode == 0
    ckpt = tmp_path / "aa" / "checkpoint.pt"
    before = ckpt.read_bytes()
    r = run_cli("train", *common, "--steps", "2", "--base", "8", "--resume")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "checkpoint was trained with" in r.stderr and "--base" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert ckpt.read_bytes() == before


def test_precision_bf16_trains_on_the_cpu_and_says_so(train_dir, tmp_path):
    """--precision bf16 runs the nets under bfloat16 autocast on the CPU (about 1.3x faster where the
    CPU has bf16 dot products); the loss it logs stays close to float32's on the same first batch,
    and the exported card says which precision trained it. An untrained net is far enough from its
    target that bf16's SSIM error would hide here: test_metrics checks the SSIM itself."""
    common = ["--data_dir", train_dir, "--model", "ct", "--batch", "2", "--base", "4", "--size", "128",
              "--steps", "1", "--no_augment", "--quiet", "--device", "cpu"]
    first = {}
    for precision in ("fp32", "bf16"):
        r = run_cli("train", *common, "--out", tmp_path / precision, "--precision", precision)
        assert r.returncode == 0, r.stderr
        first[precision] = losses(tmp_path / precision, "ct")[0][1]
        assert json.loads((tmp_path / precision / "ct" / "weights" / "ct.json").read_text())["precision"] == precision
    assert first["bf16"] == pytest.approx(first["fp32"], rel=0.03)  # the SSIM term: test_metrics checks it is float32

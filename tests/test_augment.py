"""Fashion-photo framings and camera looks in training batches: one crop per clip, joints cut
off by the frame become missing, parsings stay labels, and CT's target shares the source's
light and lens but not its noise and JPEG."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation

from conftest import run_cli
from psc_engine.formats.poses import JOINTS, read_pose_csv, write_pose_csv
from psc_engine.formats.train_layout import VIEWS, TrainSet
from psc_engine.training.augment import Augment, camera_look, fashion_framings, random_looks
from psc_engine.training.batches import pair_batch, photo_batch, pm_batch, shape_batch

FIXTURE = Path(__file__).parent / "fixtures" / "train_tiny"
ANKLES = [JOINTS.index("r_ankle"), JOINTS.index("l_ankle")]
FRAMED = Augment(framing=1.0)


@pytest.fixture(scope="module")
def still(tmp_path_factory):
    """The fixture's people with their front view copied into all eight views: a clip where the
    person stands still, so that source and target of every pair are the same picture."""
    root = tmp_path_factory.mktemp("still") / "train"
    for stem in ("0000", "0001"):
        for v in VIEWS:
            for kind, ext in (("img", "jpg"), ("sg", "png")):
                (root / f"{v}_{kind}").mkdir(parents=True, exist_ok=True)
                shutil.copy(FIXTURE / f"front_{kind}" / f"{stem}.{ext}", root / f"{v}_{kind}" / f"{stem}.{ext}")
        front = read_pose_csv(FIXTURE / "joint" / f"{stem}.csv")[1][VIEWS.index("front")]
        for folder, n in (("joint", 8), ("joint_interpolation", 12)):
            (root / folder).mkdir(exist_ok=True)
            write_pose_csv(root / folder / f"{stem}.csv", np.repeat(front[None], n, 0), [0.0] * 4 + [0.5] * (n - 4) if n == 12 else None)
    return TrainSet(root)


def test_source_and_target_share_the_crop(still):
    """A still clip framed as a fashion photo: source and target stay identical (one zoom and shift
    per clip), while they are no longer the unframed picture (the framing happened: the person
    now fills the frame from just below its top edge)."""
    for seed in range(4):
        b = pair_batch(still, np.random.default_rng(seed), 4, 256, FRAMED)
        plain = pair_batch(still, np.random.default_rng(seed), 4, 256, augment=False)
        assert torch.equal(b["src_labels"], b["tgt_labels"]) and torch.equal(b["src_maps"], b["tgt_maps"])
        assert torch.allclose(b["src_image"], b["tgt_image"])
        for labels in b["src_labels"]:
            rows = np.flatnonzero((labels > 0).any(1).numpy())
            assert 2 <= rows[0] <= 0.1 * 256  # the top of the head 2-8 % below the top edge (a pixel of rounding)
            assert rows[-1] >= 250  # and the person reaches the bottom edge
        assert not torch.equal(b["src_labels"], plain["src_labels"])
    # without framing each view gets its own small affine: the same picture is moved apart
    b = pair_batch(still, np.random.default_rng(0), 4, 256, augment=True)
    assert not torch.equal(b["src_labels"], b["tgt_labels"])


def test_framings_run_from_full_body_to_thigh_up(still):
    """The bottom edge falls anywhere from below the feet to mid-thigh: over many clips some keep
    the ankles in the frame and some cut below the hips, with the knees gone."""
    data = TrainSet(FIXTURE)
    feet_in, knees_out = 0, 0
    knees, hips = [JOINTS.index("r_knee"), JOINTS.index("l_knee")], [JOINTS.index("r_hip"), JOINTS.index("l_hip")]
    for seed in range(10):
        b = photo_batch(data, np.random.default_rng(seed), 8, augment=FRAMED)
        vis = b["visible"]
        feet_in += int(vis[:, ANKLES].any(1).sum())
        knees_out += int((~vis[:, knees].any(1) & vis[:, hips].any(1)).sum())
    assert feet_in >= 8 and knees_out >= 8, (feet_in, knees_out)


def test_joints_cut_off_by_the_frame_become_missing(still):
    """Joints the framing pushes out of the frame are missing (NaN, written -1), their pose maps
    are empty, and every joint left lies inside the frame and on the person."""
    data = TrainSet(FIXTURE)
    cut = 0
    for seed in range(6):
        b = pair_batch(data, np.random.default_rng(seed), 4, 256, FRAMED)
        raw = pair_batch(data, np.random.default_rng(seed), 4, 256, augment=False)
        for maps, raw_maps, labels in ((b["src_maps"], raw["src_maps"], b["src_labels"]),
                                       (b["tgt_maps"], raw["tgt_maps"], b["tgt_labels"])):
            peak = maps.amax((-1, -2))  # (B, 18): 1 at a joint in the frame, 0 for a missing one
            had = raw_maps.amax((-1, -2)) > 0.5
            lost = had & (peak < 1e-6)
            cut += int(lost[:, ANKLES].sum())
            assert torch.all((peak > 0.5) | (peak < 1e-6))  # no joint half outside: a bump is whole or absent
            for item in range(len(maps)):
                person = binary_dilation(labels[item].numpy() > 0, iterations=3)
                for j in torch.nonzero(peak[item] > 0.5).flatten():
                    y, x = np.unravel_index(int(maps[item, j].argmax()), (256, 256))
                    assert person[y, x], (seed, item, JOINTS[j])  # image, parsing and joints moved alike
    assert cut > 0  # some framings cut the legs: the ankles went


def test_parsings_stay_labels_and_photo_batches_drop_cut_joints():
    data = TrainSet(FIXTURE)
    b = photo_batch(data, np.random.default_rng(3), 8, augment=Augment(framing=1.0, photometric=1.0))
    raw = [data.parsing(i, v) for i in range(2) for v in VIEWS]
    classes = set(np.unique(np.stack(raw)).tolist())
    assert b["labels"].dtype == torch.long and set(b["labels"].unique().tolist()) <= classes
    assert torch.equal(b["visible"], ~torch.isnan(b["poses"]).any(-1))
    assert not b["visible"].all()  # some joints were cut off
    hm = b["heatmaps"].amax((-1, -2))
    assert torch.all(hm[~b["visible"]] == 0)
    p = b["poses"][b["visible"]]
    assert torch.all((p >= 0) & (p <= 255))


def test_pm_framing_comes_from_the_joints_alone():
    b = pm_batch(TrainSet(FIXTURE), np.random.default_rng(0), 8, 128, FRAMED)
    for key in ("pose_a", "pose_b"):
        p = b[key]
        ok = ~torch.isnan(p).any(-1)
        assert torch.all((p[ok] >= 0) & (p[ok] <= 255))
    assert (~b["joints_ok"][:, ANKLES]).any()  # legs were cut in some transitions
    assert torch.all(b["maps_a"].amax((-1, -2))[torch.isnan(b["pose_a"]).any(-1)] == 0)


def test_a_clip_whose_legs_are_not_seen_keeps_no_framing():
    poses = torch.full((2, 2, 18, 2), float("nan"))
    poses[:, :, :8] = 100.0  # head and arms only
    affines, framed = fashion_framings(np.random.default_rng(0), poses, None, share=1.0)
    assert not framed.any() and np.all(affines == [1.0, 0.0, 0.0])
    poses[:, :, JOINTS.index("nose")] = torch.tensor([100.0, 40.0])
    poses[:, :, JOINTS.index("neck")] = torch.tensor([100.0, 70.0])
    affines, framed = fashion_framings(np.random.default_rng(0), poses, None, share=1.0, head_cut=1.0)
    assert framed.all()  # a head cut still applies: the bottom edge stays where the photo cut it
    top = (np.array([40.0, 70.0]) - 127.5) * affines[:, :1] + 127.5 + affines[:, 2:]  # nose and neck after
    assert np.all(top[:, 0] < 0.3 * top[:, 1] + 1) and np.all(top[:, 1] > 0)
    assert np.allclose((256 - 127.5) * affines[:, 0] + 127.5 + affines[:, 2], 256)  # the bottom edge stays put


def test_the_target_shares_the_light_and_lens_but_not_the_noise(still, monkeypatch):
    """CT with camera looks, on a still clip: the target gets exactly the source's exposure, white
    balance and blur, without its noise and JPEG. The geometry is the same as without looks
    (they are drawn last), and AA's batch is CT's without photos."""
    import psc_engine.training.batches as batches

    look = {"gain": np.array([[1.15, 1.0, 0.85]] * 4), "blur": np.full(4, 0.8), "noise": np.full(4, 0.02),
            "quality": np.full(4, 40)}
    drawn = batches.random_looks
    monkeypatch.setattr(batches, "random_looks", lambda rng, n: (drawn(rng, n), look)[1])  # the same draws, a known look
    aug = Augment(framing=1.0, photometric=1.0)
    b = pair_batch(still, np.random.default_rng(0), 4, 256, aug)
    plain = pair_batch(still, np.random.default_rng(0), 4, 256, FRAMED)
    assert torch.equal(b["src_labels"], plain["src_labels"]) and torch.equal(plain["src_image"], plain["tgt_image"])
    assert torch.equal(shape_batch(still, np.random.default_rng(0), 4, 256, aug)["tgt_maps"], b["tgt_maps"])
    lens = camera_look(plain["tgt_image"], look, None, [(k, k) for k in range(4)], artifacts=False)
    torch.testing.assert_close(b["tgt_image"], lens)  # the target: light and lens, nothing else
    assert not torch.allclose(lens, plain["tgt_image"], atol=0.05)
    residual = (b["src_image"] - lens).abs().mean().item()
    assert 0.005 < residual < 0.1  # the source: the same, plus its noise and JPEG
    clean = {**look, "noise": np.zeros(4), "quality": np.zeros(4, int)}
    img = plain["src_image"]
    assert torch.equal(camera_look(img, clean, None, [(0, 0)]), camera_look(img, clean, None, [(0, 0)], artifacts=False))


def test_the_card_records_framing_and_looks(tmp_path):
    from psc_engine.training.config import TrainConfig
    from psc_engine.training.train import train

    common = dict(data_dir=[str(FIXTURE)], steps=1, batch=1, base=4, size=128, quiet=True)
    train(TrainConfig(model="ct", out=str(tmp_path / "a"), framing=0.7, photometric=0.3, **common))
    assert json.loads((tmp_path / "a" / "ct" / "weights" / "ct.json").read_text())["augment"] == \
        {"framing": 0.7, "photometric": 0.3, "head_cut": 0.15, "backdrop": 0.0}  # backdrops: the parser's only
    train(TrainConfig(model="aa", out=str(tmp_path / "b"), **common))
    assert json.loads((tmp_path / "b" / "aa" / "weights" / "aa.json").read_text())["augment"] == \
        {"framing": 0.5, "photometric": 0.0, "head_cut": 0.15, "backdrop": 0.0}  # AA reads no photos
    train(TrainConfig(model="parsing", out=str(tmp_path / "p"), head_cut=0.3, backdrop=0.6, **common))
    assert json.loads((tmp_path / "p" / "parsing" / "weights" / "parsing.json").read_text())["augment"] == \
        {"framing": 0.5, "photometric": 0.5, "head_cut": 0.3, "backdrop": 0.6}
    train(TrainConfig(model="aa", out=str(tmp_path / "c"), no_augment=True, **common))
    assert json.loads((tmp_path / "c" / "aa" / "weights" / "aa.json").read_text())["augment"] is False
    r = run_cli("train", "--data_dir", FIXTURE, "--model", "aa", "--photometric", "0.2", "--out", tmp_path / "d",
                "--steps", "1", "--quiet")
    assert r.returncode == 2 and "--photometric only applies to --model ct or pose or parsing" in r.stderr
    r = run_cli("train", "--data_dir", FIXTURE, "--model", "aa", "--framing", "1.5", "--out", tmp_path / "d",
                "--steps", "1", "--quiet")
    assert r.returncode == 2 and "--framing must lie in [0, 1]" in r.stderr
    r = run_cli("train", "--data_dir", FIXTURE, "--model", "ct", "--backdrop", "0.2", "--out", tmp_path / "d",
                "--steps", "1", "--quiet")
    assert r.returncode == 2 and "--backdrop only applies to --model parsing" in r.stderr


def test_a_head_cut_puts_the_top_edge_between_the_eyes_and_the_chin(still):
    """Every clip framed with its head cut: the top edge lies between a little above the nose and
    the chin, so the nose is off the frame or near its top, the neck is in it, and the person's
    pixels reach the top edge; the hips stay in (the bottom edge is drawn as before)."""
    b = photo_batch(still, np.random.default_rng(1), 8, augment=Augment(framing=1.0, head_cut=1.0))
    nose, neck, hips = (b["poses"][:, JOINTS.index(j)] for j in ("nose", "neck", "r_hip"))
    seen = ~torch.isnan(neck).any(-1)
    assert seen.all() and (~torch.isnan(hips).any(-1)).all()
    assert torch.all(neck[:, 1] > 10)
    nose_y = torch.nan_to_num(nose[:, 1], nan=-1.0)
    assert torch.all(nose_y < 0.3 * neck[:, 1] + 1)  # above the cut line or off the frame
    assert (nose_y < 0).any()  # cut above the chin: some noses leave the frame
    assert torch.all((b["labels"][:, 0] > 0).any(-1))  # the head reaches the top edge
    plain = photo_batch(still, np.random.default_rng(1), 8, augment=Augment(framing=1.0))
    assert not (plain["labels"][:, 0] > 0).any()  # without: space above the head


def test_head_cut_zero_draws_as_before(still):
    a = pair_batch(still, np.random.default_rng(5), 4, 128, Augment(framing=1.0, photometric=0.5))
    b = pair_batch(still, np.random.default_rng(5), 4, 128, Augment(framing=1.0, photometric=0.5, head_cut=0.0))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_backdrops_are_plain_grey_outside_a_slightly_wrong_person_mask():
    from psc_engine.prepare import BACKDROP
    from psc_engine.training.augment import BACKDROP_SLACK, paint_backdrops

    data = TrainSet(FIXTURE)
    b = photo_batch(data, np.random.default_rng(2), 8, augment=Augment(backdrop=1.0))
    grey = BACKDROP / 127.5 - 1
    person = (b["labels"] > 0).numpy()
    is_grey = (b["image"] - grey).abs().amax(1).numpy() < 1e-6  # (B, H, W)
    far = ~binary_dilation(person, iterations=BACKDROP_SLACK + 1, structure=np.ones((1, 3, 3)))
    assert is_grey[far].all()  # well outside the person: plain grey
    deep = ~binary_dilation(~person, iterations=BACKDROP_SLACK + 1, structure=np.ones((1, 3, 3)))
    assert not is_grey[deep].any()  # well inside: the photo
    plain = photo_batch(data, np.random.default_rng(2), 8, augment=True)
    assert (plain["image"] - grey).abs().amax(1).lt(1e-6).float().mean() < 0.05
    # the slack: grown and shrunk masks both occur
    images = torch.zeros(16, 3, 64, 64)
    labels = torch.zeros(16, 64, 64, dtype=torch.long)
    labels[:, 20:44, 20:44] = 3
    painted = (paint_backdrops(images, labels, np.random.default_rng(0), 1.0) == 0).all(1).sum((1, 2))  # kept pixels
    assert (painted > 24 * 24).any() and (painted < 24 * 24).any()

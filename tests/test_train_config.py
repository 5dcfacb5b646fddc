"""Training's config: the options come from TrainConfig, each net is one NETS entry, and a run
writes its checkpoint state, model card and loss log as three separate things."""
import argparse
import csv
import io
import json
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from psc_engine import PSCError
from psc_engine.cli import build_parser
from psc_engine.formats.train_layout import TrainSet
from psc_engine.training import batches, losses
from psc_engine.training.config import NETS, TrainConfig
from psc_engine.training.train import RunState, make_batch, train
from psc_engine.weights import build_net

FIXTURE = Path(__file__).parent / "fixtures" / "train_tiny"


def tiny(tmp_path, model, **kw):
    return TrainConfig(**{"data_dir": [str(FIXTURE)], "model": model, "out": str(tmp_path), "steps": 1, "batch": 1,
                          "base": 4, "size": 128, "quiet": True, **kw})


def test_the_command_line_options_are_the_dataclass_fields():
    args = build_parser().parse_args(["train", "--data_dir", "a", "b", "--data_dir", "c", "--model", "aa"])
    cfg = TrainConfig.from_args(args)
    assert cfg == TrainConfig(data_dir=["a", "b", "c"], model="aa")  # every default is the dataclass's
    sub = argparse.ArgumentParser()
    TrainConfig.add_arguments(sub)
    assert {a.dest for a in sub._actions} - {"help"} == {f.name for f in fields(TrainConfig)}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--data_dir", "a", "--model", "nonet"])


@pytest.mark.parametrize("model", sorted(NETS))
def test_each_net_entry_trains_a_step(model):
    """A NETS entry is all `train` needs: its builder makes a batch its loss reads, and the net
    of that name exists (weights.build_net)."""
    net_entry = NETS[model]
    assert callable(getattr(batches, net_entry.batch)) and callable(getattr(losses, net_entry.loss))
    cfg = TrainConfig(data_dir=[str(FIXTURE)], model=model, batch=2, size=128)
    torch.manual_seed(0)
    net = build_net(model, {"base": 4})
    batch = make_batch(cfg, TrainSet(FIXTURE), np.random.default_rng(0), torch.device("cpu"))
    extras = losses.Extras(probe=losses.RandomFeatures() if model == "ct" else None)
    loss, terms = getattr(losses, net_entry.loss)(net, batch, extras)
    loss.backward()
    assert torch.isfinite(loss) and terms and all(np.isfinite(v) for v in terms.values())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_options_a_net_does_not_take_are_refused():
    for bad, message in ((dict(model="aa", ssim_weight=3.0), "--ssim_weight only applies to --model ct"),
                         (dict(model="pm", shape_from="w"), "--shape_from only applies to --model ct"),
                         (dict(model="ct", shape_mix=2.0), "--shape_mix must lie in [0, 1]"),
                         (dict(model="aa", ema=1.0), "--ema must lie in (0, 1)")):
        with pytest.raises(PSCError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            TrainConfig(data_dir=["x"], **bad).check()


def test_state_card_and_log_are_three_things(tmp_path):
    """The checkpoint holds the RunState (what a resume needs), the card what the weights are,
    losses.csv one row per step; none of them carries the others."""
    train(tiny(tmp_path, "ct", steps=2, ssim_weight=2.0))
    saved = torch.load(tmp_path / "ct" / "checkpoint.pt", weights_only=True)
    state = RunState.from_checkpoint(saved)
    assert state.step == saved["step"] == 2 and state.samples_seen == 2 and state.net_config == {"base": 4}
    assert state.config["ssim_weight"] == 2.0 and state.options["ssim_weight"] == 2.0
    card = json.loads((tmp_path / "ct" / "weights" / "ct.json").read_text())
    assert card["steps"] == 2 and card["size"] == 128 and card["ssim_weight"] == 2.0 and card["lr"] == 4e-4
    assert card["data"].startswith("2 train-layout samples from ")
    assert "samples_seen" not in card and "config" in card  # the card's config is the net's (save_weights)
    with open(tmp_path / "ct" / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1", "2"] and {"loss", "lr", "ssim", "seconds"} <= set(rows[0])


def test_a_checkpoint_with_the_older_info_record_resumes(tmp_path):
    """Checkpoints written before RunState carry one `info` dict (state, card and log fields
    mixed); they resume, and a resume with their options gives no note."""
    cfg = tiny(tmp_path / "old", "aa", ema=0.5)
    train(cfg)
    ckpt = tmp_path / "old" / "aa" / "checkpoint.pt"
    saved = torch.load(ckpt, weights_only=True)
    state = json.loads(saved.pop("state"))
    saved["info"] = json.dumps({"seconds": state["seconds"], "samples_seen": state["samples_seen"],
                                "config": state["net_config"], "ema": 0.5, "model": "aa", "size": 128, "batch": 1,
                                "lr": 4e-4, "precision": "fp32", "samples": 2, "data": [str(FIXTURE)],
                                "hardware": "cpu x1 (x86_64)", "steps": 1})
    torch.save(saved, ckpt)
    out = io.StringIO()
    assert train(replace(cfg, steps=2, resume=True), out=out) == 2
    assert "note:" not in out.getvalue()
    assert RunState.from_checkpoint(torch.load(ckpt, weights_only=True)).samples_seen == 2
    train(replace(cfg, out=str(tmp_path / "straight"), steps=2))
    with open(tmp_path / "old" / "aa" / "losses.csv") as a, open(tmp_path / "straight" / "aa" / "losses.csv") as b:
        np.testing.assert_allclose([float(r["loss"]) for r in csv.DictReader(a)],
                                   [float(r["loss"]) for r in csv.DictReader(b)], rtol=1e-5)

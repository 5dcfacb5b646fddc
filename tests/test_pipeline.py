"""The engine API: loading, PM interpolation, batched AA -> CT transfer, weights checks."""
import json
import shutil

import numpy as np
import pytest

from psc_engine import Pipeline, PSCError
from psc_engine.bench import example_inputs
from psc_engine.weights import load_weights


@pytest.fixture(scope="module")
def pipe(tiny_weights):
    return Pipeline.from_pretrained(tiny_weights, device="cpu")


def test_from_pretrained_reads_cards(pipe):
    assert pipe.device.type == "cpu"
    assert pipe.placeholder
    assert set(pipe.cards) == {"pm", "aa", "ct"}


def test_interpolate_shapes(pipe):
    _, _, pose, targets = example_inputs(4)
    out = pipe.interpolate(pose, targets[2], [0.0, 0.5, 1.0])
    assert out.shape == (3, 18, 2) and out.dtype == np.float32


def test_transfer_shapes_and_batching(pipe):
    image, parsing, pose, targets = example_inputs(5)
    a = pipe.transfer(image, parsing, pose, targets, batch_size=2)
    assert a.images.shape == (5, 256, 256, 3) and a.images.dtype == np.uint8
    assert a.parsings.shape == (5, 256, 256) and a.parsings.dtype == np.uint8 and a.parsings.max() < 7
    b = pipe.transfer(image, parsing, pose, targets, batch_size=5)
    # Batch size changes only float rounding order, never the frame.
    assert np.abs(a.images.astype(int) - b.images.astype(int)).max() <= 1
    assert (a.parsings != b.parsings).mean() < 1e-3


def test_reference_encoded_once_per_clip(pipe, monkeypatch):
    calls = []
    original = pipe.ct.encode_source
    monkeypatch.setattr(pipe.ct, "encode_source", lambda *a: calls.append(1) or original(*a))
    image, parsing, pose, targets = example_inputs(7)
    chunks = list(pipe.stream(image, parsing, pose, targets, batch_size=3))
    assert [len(c) for c in chunks] == [3, 3, 1] and [c.start for c in chunks] == [0, 3, 6]
    assert len(calls) == 1


def test_missing_joints_accept_nan_and_minus_one(pipe):
    image, parsing, pose, targets = example_inputs(2)
    t_nan = targets.copy()
    t_nan[:, 0] = np.nan
    t_neg = targets.copy()
    t_neg[:, 0] = -1
    a = pipe.transfer(image, parsing, pose, t_nan)
    b = pipe.transfer(image, parsing, pose, t_neg)
    np.testing.assert_array_equal(a.images, b.images)


def test_bad_inputs(pipe):
    image, parsing, pose, targets = example_inputs(2)
    with pytest.raises(PSCError, match="uint8"):
        pipe.transfer(image[:100], parsing, pose, targets)
    bad = parsing.copy()
    bad[0, 0] = 8
    with pytest.raises(PSCError, match="label 8"):
        pipe.transfer(image, bad, pose, targets)
    with pytest.raises(PSCError, match="18, 2"):
        pipe.transfer(image, parsing, pose[:17], targets)


def test_weights_hash_mismatch_and_wrong_net(tiny_weights, tmp_path):
    folder = tmp_path / "w"
    shutil.copytree(tiny_weights, folder)
    with open(folder / "aa.safetensors", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    with pytest.raises(PSCError, match="does not match aa.json"):
        load_weights(folder, "aa")
    shutil.copy(tiny_weights / "pm.safetensors", folder / "aa.safetensors")
    card = json.loads((tiny_weights / "aa.json").read_text())
    card["sha256"] = json.loads((tiny_weights / "pm.json").read_text())["sha256"]
    (folder / "aa.json").write_text(json.dumps(card))
    with pytest.raises(PSCError, match="do not fit a aa net"):
        load_weights(folder, "aa")
    (folder / "ct.safetensors").unlink()
    with pytest.raises(PSCError, match="weight file not found"):
        load_weights(folder, "ct")


def test_out_of_memory_falls_back_to_smaller_batches(pipe, monkeypatch):
    import torch

    image, parsing, pose, targets = example_inputs(7)
    expected = pipe.transfer(image, parsing, pose, targets, batch_size=2)
    real = pipe.render

    def fragile(reference, poses, *a):
        if len(poses) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(reference, poses, *a)

    monkeypatch.setattr(pipe, "render", fragile)
    said = []
    chunks = list(pipe.stream(image, parsing, pose, targets, batch_size=8, on_warning=said.append))
    assert [c.start for c in chunks] == [0, 2, 4, 6]
    assert said == ["out of memory at batch size 7; continuing with 4", "out of memory at batch size 4; continuing with 2"]
    got = np.concatenate([c.images for c in chunks])
    assert np.abs(got.astype(int) - expected.images.astype(int)).max() <= 1

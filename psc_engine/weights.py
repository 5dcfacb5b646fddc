"""Checkpoints: one safetensors file per net plus a JSON card beside it.

`<name>.safetensors` holds only tensors (loading never runs code). `<name>.json` records the
net, its config, what it was trained on, the steps, and the SHA-256 of the weight file, which
is checked before the tensors are read.
"""
import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .nets.aa import AANet
from .nets.ct import CTNet
from .errors import PSCError
from .formats.images import atomic_write_bytes
from .nets.photo import KeypointNet, ParserNet
from .nets.pm import PMNet

NETS = {"pm": PMNet, "aa": AANet, "ct": CTNet}  # the PSC chain
PHOTO_NETS = {"pose": KeypointNet, "parsing": ParserNet}  # photo preparation (optional)
FORMAT = 1


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_net(name, config=None):
    nets = {**NETS, **PHOTO_NETS}
    if name not in nets:
        raise PSCError(f"unknown net {name!r}; expected one of {sorted(nets)}")
    return nets[name](**(config or {}))


def save_weights(net, name, folder, dtype=torch.float16, **card):
    """Write `<folder>/<name>.safetensors` and its JSON card atomically. Returns the JSON path.

    Shipped weights are stored as float16 (half the size; the nets run in float32 after loading).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in net.state_dict().items()}
    blob = save(tensors, metadata={"net": name})
    weights_path = folder / f"{name}.safetensors"
    atomic_write_bytes(weights_path, blob)
    info = {"format": FORMAT, "net": name, "config": net.config, "dtype": str(dtype).removeprefix("torch."),
            "parameters": sum(p.numel() for p in net.parameters()), **card,
            "sha256": hashlib.sha256(blob).hexdigest()}
    json_path = folder / f"{name}.json"
    atomic_write_bytes(json_path, (json.dumps(info, indent=2) + "\n").encode())
    return json_path


def read_card(folder, name):
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        raise PSCError(f"missing weight card (expected {name}.json beside {name}.safetensors)", path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PSCError(f"not valid JSON ({e.msg if hasattr(e, 'msg') else e})", path) from None
    if not isinstance(info, dict) or info.get("net") != name or "sha256" not in info:
        raise PSCError(f"not a weight card for net {name!r} (its 'net' is {info.get('net') if isinstance(info, dict) else None!r})", path)
    return info


def load_weights(folder, name, device="cpu"):
    """Build net `name` from `<folder>/<name>.json` and load its checked tensors. Returns (net, card)."""
    info = read_card(folder, name)
    path = Path(folder) / f"{name}.safetensors"
    if not path.is_file():
        raise PSCError("weight file not found", path)
    digest = sha256_file(path)
    if digest != info["sha256"]:
        raise PSCError(f"SHA-256 {digest[:12]}... does not match {name}.json ({info['sha256'][:12]}...): "
                       "the file is damaged or not the one its card describes", path)
    net = build_net(name, info.get("config"))
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise PSCError(f"not a readable safetensors file ({e})", path) from None
    own = net.state_dict()
    bad = sorted(set(own) ^ set(tensors)) or [k for k in own if own[k].shape != tensors[k].shape]
    if bad:
        raise PSCError(f"tensors do not fit a {name} net with config {info.get('config')} (first mismatch: {bad[0]})", path)
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()})
    return net.to(device).eval(), info


def make_placeholder(folder, base=16, seed=0):
    """Untrained, randomly initialised checkpoints of every net so the commands run end to end.

    Their cards say `"placeholder": true` and the Pipeline warns; outputs are not meaningful.
    """
    torch.manual_seed(seed)
    for name in {**NETS, **PHOTO_NETS}:
        save_weights(build_net(name, {"base": base}), name, folder, placeholder=True, trained=False, steps=0,
                     data="none (random initialisation, seed %d)" % seed)

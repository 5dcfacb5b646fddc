"""Training: `python -m psc_engine train --data_dir D --model pm|aa|ct|pose|parsing`.

Runs that fit these machines: `--minutes` stops cleanly with a checkpoint, `--resume` carries on
exactly (model, optimiser, scheduler and step are saved; every batch is drawn from a random
generator seeded by (seed, step), so a resumed run sees the same batches as an unbroken one).
On CUDA it uses bf16 autocast (`--precision bf16` asks for it on the CPU too); under `torchrun`
it trains data-parallel (DistributedDataParallel), each rank drawing its own batches.

The options are a TrainConfig, the nets' own settings one NETS entry each (config.py). A run
writes three things under <out>/<model>/, each atomically and at every checkpoint:
- the checkpoint (checkpoint.pt): the tensors and a RunState, all that --resume needs;
- the loss log (losses.csv, one row per step, and its plot losses.png);
- the exported weights with their model card (weights/<model>.safetensors + .json): what the
  weights are and how they were made, for whoever uses them (with `--ema`, a moving average).
"""
import csv
import io
import json
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import batches, losses
from .augment import Augment
from .config import NETS, TrainConfig
from .losses import Extras, RandomFeatures
from ..errors import PSCError
from ..formats.images import atomic_write_bytes
from ..formats.train_layout import TrainSet
from ..pipeline import pick_device
from ..weights import build_net, load_weights, save_weights


def _dist():
    """(rank, world) from torchrun's environment; initialises the process group when world > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return rank, world


# ---- the checkpoint ----

@dataclass
class RunState:
    """What a checkpoint records beside its tensors: where the run stands, what it started from,
    and what its last invocation was told (a resume told otherwise says so)."""

    step: int = 0
    seconds: float = 0.0
    samples_seen: int = 0
    net_config: dict = None
    init: dict = None  # the trained weights the run started from (--init), if any
    options: dict = None  # card_options() of the last invocation
    config: dict = None  # the last invocation's TrainConfig

    @classmethod
    def from_checkpoint(cls, saved):
        """From a loaded checkpoint; one whose record is the older `info` dict loads too."""
        if "state" in saved:
            return cls(**json.loads(saved["state"]))
        info = json.loads(saved["info"])
        return cls(step=saved["step"], seconds=info.get("seconds", 0.0), samples_seen=info.get("samples_seen", 0),
                   net_config=info.get("config"), init=info.get("init"),
                   options={k: info.get(k) for k in ("shape_from", "ema", "ssim_weight")})


def save_checkpoint(path, net, opt, sched, state, ema=None):
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "optim": opt.state_dict(), "sched": sched.state_dict(), "step": state.step,
                "state": json.dumps(asdict(state)), **({"ema": ema.state_dict()} if ema is not None else {})}, buf)
    atomic_write_bytes(path, buf.getvalue())


# ---- the model card ----

def card_options(cfg, data):
    """The options a card records, None where this run does not use them."""
    mixed = bool(data.geometry_only) and bool(data.with_images)
    augment = augment_of(cfg)
    return {"augment": asdict(augment) if augment else False,
            "shape_from": {"from": str(cfg.shape_from), "mix": cfg.shape_mix} if cfg.shape_from else None,
            "ema": cfg.ema or None,
            "ssim_weight": cfg.ssim_weight if cfg.ssim_weight != 1.0 else None,
            "geometry_mix": ("by count" if cfg.geometry_mix is None else cfg.geometry_mix) if mixed else None}


def option_text(value):
    """A card option for a one-line note: 0.999, 'weights (mix 0.5)', 'framing 0.5, photometric 0, ...', 'off' or 'none'."""
    if value is None or value is False:
        return "none" if value is None else "off"
    if isinstance(value, dict):
        return f"{value['from']} (mix {value['mix']})" if "from" in value else ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def note_changed_options(before, now, ckpt_path, out):
    """Said even with --quiet: the run continues, but not as it began. A checkpoint of an older
    record lacks some options; those it lacks are not compared."""
    for key, value in now.items():
        if before is not None and key in before and before[key] != value:
            print(f"note: resuming {ckpt_path} with {key} {option_text(value)}; "
                  f"its last run had {option_text(before[key])}", file=out)


def model_card(cfg, state, data, hardware, precision, batch):
    """The card written beside the exported weights (weights.save_weights adds the net, its
    config and the file's SHA-256)."""
    geometry = f" ({len(data.geometry_only)} of them geometry-only)" if data.geometry_only else ""
    return dict(placeholder=False, trained=True, steps=state.step, size=cfg.train_size,
                data=f"{len(data)} train-layout samples{geometry} from {', '.join(map(str, cfg.data_dir))}",
                seconds=round(state.seconds), hardware=hardware, precision=precision, batch=batch, lr=cfg.lr,
                init=state.init, **{k: v for k, v in card_options(cfg, data).items() if v is not None})


# ---- the loss log ----

class LossLog:
    """losses.csv, one row per step (loss, lr, each loss term, seconds), and its plot losses.png."""

    def __init__(self, folder, up_to_step):
        self.csv, self.png = Path(folder) / "losses.csv", Path(folder) / "losses.png"
        self.rows = read_log(self.csv, up_to_step)

    def add(self, step, loss, lr, terms, seconds):
        self.rows.append({"step": step, "loss": round(loss, 5), "lr": lr, **{k: round(v, 5) for k, v in terms.items()},
                          "seconds": round(seconds, 1)})

    def save(self):
        from ..formats.draw import loss_plot

        write_log(self.csv, self.rows)
        loss_plot(self.rows, self.png)


def write_log(path, rows):
    if not rows:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[-1].keys()), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def read_log(path, up_to_step):
    """The logged rows of steps 1..up_to_step (rows after the last checkpoint are dropped)."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= up_to_step]


# ---- one step ----

def augment_of(cfg):
    """The augmentation cfg asks for (flips, small affines and garment colours always; framings
    (a share cutting the head) and, for nets reading photos, camera looks on their shares; for the
    parser plain backdrops), or None."""
    if cfg.no_augment:
        return None
    takes = lambda name: getattr(cfg, name) if name in cfg.net.options else 0.0
    return Augment(framing=cfg.framing, photometric=takes("photometric"), head_cut=cfg.head_cut,
                   backdrop=takes("backdrop"))


def make_batch(cfg, data, rng, device, warp=False):
    """One batch for cfg's net from its NETS batch builder, on `device`; `warp`: with the warped
    source parsing that a warp=True AA-Net reads (AA's own, or CT's --shape_from)."""
    build = getattr(batches, cfg.net.batch)
    b = build(data, rng, cfg.batch, cfg.train_size, augment=augment_of(cfg), geometry_mix=cfg.geometry_mix,
              **({"warp": True} if warp else {}))
    return {k: v.to(device, non_blocking=True) for k, v in b.items()}


def step_loss(kind, net, batch, probe=None, shape_net=None, shape_mix=0.0, ssim_weight=1.0):
    """One training step's loss (and its terms) for net `kind` on a batch from batches.py."""
    return getattr(losses, NETS[kind].loss)(net, batch, Extras(probe, shape_net, shape_mix, ssim_weight))


def make_ema(net, decay):
    """An exponential moving average of net's weights (torch's AveragedModel), or None for decay 0.
    With a small learning rate late in training the last step's weights jitter around where the
    loss is low; their running mean sits nearer the middle, so it is what a run exports."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay))


# ---- the run ----

def open_data(cfg):
    data = TrainSet(cfg.data_dir)
    if cfg.net.images:
        data.require_images(f"--model {cfg.model}")
    return data


def train(cfg, out=sys.stderr):
    """Train cfg's net (a TrainConfig, or parsed `psc train` arguments). Returns the last step."""
    cfg = (cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_args(cfg)).check()
    rank, world = _dist()
    device = pick_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    data = open_data(cfg)
    run_dir = Path(cfg.out) / cfg.model
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    if ckpt_path.exists() and not cfg.resume:
        raise PSCError("a checkpoint is already here; pass --resume to continue it or choose another --out", ckpt_path)
    resumed = cfg.resume and ckpt_path.exists()  # --resume with no checkpoint yet starts afresh

    torch.manual_seed(cfg.seed)  # the initial weights, too, come from the seed
    net = build_net(cfg.model, {"base": cfg.base, **({"warp": True} if cfg.warp else {})}).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, cfg.steps // 4), gamma=0.5)  # halve each quarter
    state, saved = RunState(), None
    if resumed:
        saved = torch.load(ckpt_path, map_location=device, weights_only=True)
        state = RunState.from_checkpoint(saved)
        if state.net_config and state.net_config != net.config:  # before loading: one line, not a traceback
            raise PSCError(f"checkpoint was trained with {state.net_config}, not {net.config}; give the same --base (and --warp)",
                           ckpt_path)
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optim"])
        sched.load_state_dict(saved["sched"])
    elif cfg.init:
        # A new stage (e.g. 256x256 after a cheaper 128x128 one) starts from trained weights, fresh optimiser.
        init_net, init_card = load_weights(cfg.init, cfg.model)
        if cfg.warp and {**init_net.config, "warp": True} == net.config and not init_net.warp:
            net.widen(init_net)  # an AA without the warp input: the new input starts at zero weight
        elif init_net.config != net.config:
            raise PSCError(f"--init weights have config {init_net.config}, this run {net.config}", cfg.init)
        else:
            net.load_state_dict(init_net.state_dict())
        state.init = {"from": str(cfg.init), "steps": init_card.get("steps"), "size": init_card.get("size")}
    before = state.options
    state.net_config, state.options, state.config = net.config, card_options(cfg, data), cfg.as_dict()
    if resumed and rank == 0:
        note_changed_options(before, state.options, ckpt_path, out)
    ema = make_ema(net, cfg.ema)  # starts as a copy of the weights the run starts from
    if ema is not None and saved is not None and "ema" in saved:
        ema.load_state_dict(saved["ema"])
    log = LossLog(run_dir, state.step)
    model = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    extras = Extras(probe=RandomFeatures().to(device) if cfg.model == "ct" else None, shape_mix=cfg.shape_mix,
                    ssim_weight=cfg.ssim_weight)
    if cfg.shape_from:
        extras.shape_net = load_weights(cfg.shape_from, "aa", device=device)[0].eval().requires_grad_(False)
    reads_warp = cfg.warp or getattr(extras.shape_net, "warp", False)
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()} ({platform.machine()})"

    def checkpoint():
        if rank == 0:
            save_checkpoint(ckpt_path, net, opt, sched, state, ema)
            log.save()  # after it: a log that has a step's row has its checkpoint too
            exported = ema.module if ema is not None else net  # --ema: the moving average, not the last step
            save_weights(exported, cfg.model, run_dir / "weights",
                         **model_card(cfg, state, data, hardware, precision, cfg.batch * world))

    start_step, t0, last_ckpt = state.step, time.perf_counter(), time.perf_counter()
    seconds_before = state.seconds
    saved_step = state.step if resumed else -1
    deadline = t0 + cfg.minutes * 60 if cfg.minutes else None
    stop = []  # SIGTERM / SIGINT: finish the step, checkpoint, exit (a kill -9 still resumes from the last one)
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            handlers[sig] = signal.signal(sig, lambda signum, frame: stop.append(signum))
    try:
        net.train()
        while state.step < cfg.steps and not stop:
            rng = np.random.default_rng([cfg.seed, state.step, rank])
            torch.manual_seed(cfg.seed * 1_000_003 + state.step * 31 + rank)
            batch = make_batch(cfg, data, rng, device, reads_warp)
            with amp:
                loss, terms = getattr(losses, cfg.net.loss)(model, batch, extras)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(net)
            state.step += 1
            now = time.perf_counter()
            state.seconds = seconds_before + now - t0
            state.samples_seen += cfg.batch * world
            log.add(state.step, loss.item(), sched.get_last_lr()[0], terms, state.seconds)
            if rank == 0 and not cfg.quiet:
                rate = (state.step - start_step) / (now - t0)
                eta = (cfg.steps - state.step) / max(rate, 1e-9)
                print(f"\r{cfg.model} step {state.step}/{cfg.steps} loss {loss.item():.4f} {rate:.2f} it/s "
                      f"ETA {eta / 60:.1f} min", end="", file=out, flush=True)
            if now - last_ckpt > cfg.checkpoint_minutes * 60 or state.step == cfg.steps:
                checkpoint()
                saved_step, last_ckpt = state.step, now
                grown = open_data(cfg)  # the data generator may have finished more samples meanwhile
                if len(grown) != len(data):
                    data = grown
                    if rank == 0 and not cfg.quiet:
                        print(f"\n{cfg.model}: data now {len(data)} samples", file=out)
            if deadline and now > deadline:
                break
        if state.step != saved_step:
            checkpoint()
    finally:  # an exception too gives the caller its own handlers back
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if rank == 0 and not cfg.quiet:
        why = f" ({signal.Signals(stop[0]).name})" if stop else ""
        print(f"\n{cfg.model}: stopped at step {state.step}/{cfg.steps}{why}; checkpoint {ckpt_path}; "
              f"weights {run_dir / 'weights'}", file=out)
    if world > 1:
        torch.distributed.destroy_process_group()
    return state.step

"""Training: `python -m psc_engine train --data_dir D --model pm|aa|ct|pose|parsing`.

Runs that fit these machines: `--minutes` stops cleanly with a checkpoint, `--resume` carries on
exactly (model, optimiser, scheduler and step are saved; every batch is drawn from a random
generator seeded by (seed, step), so a resumed run sees the same batches as an unbroken one).
Checkpoints and the loss log are written atomically; the exported weights (safetensors + card)
are refreshed at each checkpoint (with `--ema`, a moving average of the weights). On CUDA it
uses bf16 autocast (`--precision bf16` asks for it on the CPU too); under `torchrun` it trains
data-parallel (DistributedDataParallel), each rank drawing its own batches.
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
from pathlib import Path

import numpy as np
import torch

from .batches import pair_batch, photo_batch, pm_batch
from ..formats.train_layout import TrainSet
from ..errors import PSCError
from ..formats.images import atomic_write_bytes
from .losses import RandomFeatures, aa_losses, ct_losses, keypoint_losses, parser_losses
from ..pipeline import pick_device
from ..weights import build_net, load_weights, save_weights


def _dist():
    """(rank, world) from torchrun's environment; initialises the process group when world > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return rank, world


CARD_OPTIONS = ("shape_from", "ema", "ssim_weight")  # training options the exported card records when used


def step_loss(kind, net, batch, probe, shape_net=None, shape_mix=0.0, ssim_weight=1.0):
    """One training step's loss (and its terms) for net `kind` on a batch from batches.py.

    CT with a `shape_net` (a frozen AA-Net): on a `shape_mix` share of the items CT reads the
    target parsing AA predicts (its class probabilities), as the chain gives it at run time,
    instead of the true one; its losses still compare against the true image and parsing. CT
    trained on true parsings alone never sees AA's mistakes (lost fingers, ragged hems, hair
    read as face) until it is used."""
    if kind == "pm":
        from .losses import pm_losses

        return pm_losses(net, batch["maps_a"], batch["maps_b"], batch["t1"], batch["t2"],
                         batch["target1"], batch["target2"], batch["joints_ok"], batch["pose_a"], batch["pose_b"])
    if kind == "aa":
        return aa_losses(net(batch["src_onehot"], batch["src_maps"], batch["tgt_maps"]), batch["tgt_labels"])
    if kind == "pose":
        return keypoint_losses(net, batch["image"], batch["heatmaps"], batch["visible"])
    if kind == "parsing":
        return parser_losses(net(batch["image"]), batch["labels"])
    shape = batch["tgt_onehot"]
    if shape_net is not None and shape_mix > 0:
        with torch.no_grad():
            predicted = shape_net(batch["src_onehot"], batch["src_maps"], batch["tgt_maps"]).softmax(1).to(shape.dtype)
        use = torch.rand(shape.shape[0], device=shape.device) < shape_mix  # seeded per step: resumes exactly
        shape = torch.where(use[:, None, None, None], predicted, shape)
    out = net(batch["src_image"], batch["src_onehot"], batch["src_maps"], shape, batch["tgt_maps"])
    return ct_losses(probe, out, batch["tgt_image"], batch["tgt_onehot"], batch["src_onehot"], ssim_weight)


def make_batch(kind, data, rng, batch, size, device, augment=True):
    if kind == "pm":
        b = pm_batch(data, rng, batch, size, augment)
    elif kind in ("pose", "parsing"):
        b = photo_batch(data, rng, batch, size, augment)
    else:
        b = pair_batch(data, rng, batch, size, augment)
    return {k: v.to(device, non_blocking=True) for k, v in b.items()}


def save_checkpoint(path, net, opt, sched, step, info, ema=None):
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "optim": opt.state_dict(), "sched": sched.state_dict(), "step": step,
                "info": json.dumps(info), **({"ema": ema.state_dict()} if ema is not None else {})}, buf)
    atomic_write_bytes(path, buf.getvalue())


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


def make_ema(net, decay):
    """An exponential moving average of net's weights (torch's AveragedModel), or None for decay 0.
    With a small learning rate late in training the last step's weights jitter around where the
    loss is low; their running mean sits nearer the middle, so it is what a run exports."""
    if not decay:
        return None
    if not 0 < decay < 1:
        raise PSCError(f"--ema must lie in (0, 1), e.g. 0.999, got {decay}")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay))


def option_text(value):
    """A card option for a one-line note: 0.999, 'weights (mix 0.5)', or 'none'."""
    if value is None:
        return "none"
    return f"{value['from']} (mix {value['mix']})" if isinstance(value, dict) else str(value)


def train(args, out=sys.stderr):
    rank, world = _dist()
    device = pick_device(args.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    data = TrainSet(args.data_dir)
    run_dir = Path(args.out) / args.model
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = run_dir / "checkpoint.pt", run_dir / "losses.csv"
    if ckpt_path.exists() and not args.resume:
        raise PSCError("a checkpoint is already here; pass --resume to continue it or choose another --out", ckpt_path)
    resumed = args.resume and ckpt_path.exists()  # --resume with no checkpoint yet starts afresh

    torch.manual_seed(args.seed)  # the initial weights, too, come from the seed
    net = build_net(args.model, {"base": args.base}).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, args.steps // 4), gamma=0.5)  # halve each quarter
    step, info = 0, {"seconds": 0.0, "samples_seen": 0}
    if resumed:
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        step, info = state["step"], json.loads(state["info"])
        if info.get("config") and info["config"] != net.config:  # before loading: a mismatch is one line, not a traceback
            raise PSCError(f"checkpoint was trained with {info['config']}, not {net.config}; give the same --base",
                           ckpt_path)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
    elif args.init:
        # A new stage (e.g. 256x256 after a cheaper 128x128 one) starts from trained weights, fresh optimiser.
        init_net, init_card = load_weights(args.init, args.model)
        if init_net.config != net.config:
            raise PSCError(f"--init weights have config {init_net.config}, this run {net.config}", args.init)
        net.load_state_dict(init_net.state_dict())
        info["init"] = {"from": str(args.init), "steps": init_card.get("steps"), "size": init_card.get("size")}
    before = {key: info.pop(key, None) for key in CARD_OPTIONS}  # the card says what this invocation uses
    ema = make_ema(net, args.ema)  # starts as a copy of the weights the run starts from
    if ema is not None:
        if resumed and "ema" in state:
            ema.load_state_dict(state["ema"])
        info["ema"] = args.ema
    rows = read_log(log_path, step)
    model = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    probe = RandomFeatures().to(device) if args.model == "ct" else None
    shape_net, shape_mix = None, args.shape_mix
    if args.shape_from:
        if args.model != "ct":
            raise PSCError("--shape_from only applies to --model ct (CT reading AA's parsings)")
        if not 0 <= shape_mix <= 1:
            raise PSCError(f"--shape_mix must lie in [0, 1], got {shape_mix}")
        shape_net = load_weights(args.shape_from, "aa", device=device)[0].eval().requires_grad_(False)
        info["shape_from"] = {"from": str(args.shape_from), "mix": shape_mix}
    ssim_weight = args.ssim_weight
    if ssim_weight != 1.0:
        if args.model != "ct":
            raise PSCError("--ssim_weight only applies to --model ct")
        if ssim_weight < 0:
            raise PSCError(f"--ssim_weight must be at least 0, got {ssim_weight}")
        info["ssim_weight"] = ssim_weight
    if resumed and rank == 0:
        for key in CARD_OPTIONS:  # said even with --quiet: the run continues, but not as it began
            if before[key] != info.get(key):
                print(f"note: resuming {ckpt_path} with {key} {option_text(info.get(key))}; "
                      f"its last run had {option_text(before[key])}", file=out)
    precision = args.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    info.update(config=net.config, model=args.model, size=args.size, batch=args.batch * world, lr=args.lr, precision=precision,
                samples=len(data), data=[str(d) for d in args.data_dir],
                hardware=torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()} ({platform.machine()})")

    def checkpoint():
        if rank == 0:
            info["steps"] = step
            save_checkpoint(ckpt_path, net, opt, sched, step, info, ema)
            write_log(log_path, rows)
            exported = ema.module if ema is not None else net  # --ema: the moving average, not the last step
            save_weights(exported, args.model, run_dir / "weights", placeholder=False, trained=True, steps=step,
                         size=args.size, data=f"{info['samples']} train-layout samples from {', '.join(info['data'])}",
                         seconds=round(info["seconds"]), hardware=info["hardware"], precision=info["precision"], batch=info["batch"],
                         init=info.get("init"), **{k: info[k] for k in CARD_OPTIONS if k in info})
            from ..formats.draw import loss_plot

            loss_plot(rows, run_dir / "losses.png")

    start_step, t0, last_ckpt = step, time.perf_counter(), time.perf_counter()
    seconds_before = info["seconds"]
    deadline = t0 + args.minutes * 60 if args.minutes else None
    stop = []  # SIGTERM / SIGINT: finish the step, checkpoint, exit (a kill -9 still resumes from the last one)
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            handlers[sig] = signal.signal(sig, lambda signum, frame: stop.append(signum))
    try:
        net.train()
        while step < args.steps and not stop:
            rng = np.random.default_rng([args.seed, step, rank])
            torch.manual_seed(args.seed * 1_000_003 + step * 31 + rank)
            batch = make_batch(args.model, data, rng, args.batch, args.size, device, augment=not args.no_augment)
            with amp:
                loss, terms = step_loss(args.model, model, batch, probe, shape_net, shape_mix, ssim_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(net)
            step += 1
            now = time.perf_counter()
            info["seconds"] = seconds_before + now - t0
            info["samples_seen"] += args.batch * world
            rows.append({"step": step, "loss": round(loss.item(), 5), "lr": sched.get_last_lr()[0],
                         **{k: round(v, 5) for k, v in terms.items()}, "seconds": round(info["seconds"], 1)})
            if rank == 0 and not args.quiet:
                rate = (step - start_step) / (now - t0)
                eta = (args.steps - step) / max(rate, 1e-9)
                print(f"\r{args.model} step {step}/{args.steps} loss {loss.item():.4f} {rate:.2f} it/s "
                      f"ETA {eta / 60:.1f} min", end="", file=out, flush=True)
            if now - last_ckpt > args.checkpoint_minutes * 60 or step == args.steps:
                checkpoint()
                last_ckpt = now
                grown = TrainSet(args.data_dir)  # the data generator may have finished more samples meanwhile
                if len(grown) != len(data):
                    data = grown
                    info["samples"] = len(data)
                    if rank == 0 and not args.quiet:
                        print(f"\n{args.model}: data now {len(data)} samples", file=out)
            if deadline and now > deadline:
                break
        if step != int(info.get("steps", -1)):
            checkpoint()
    finally:  # an exception too gives the caller its own handlers back
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if rank == 0 and not args.quiet:
        why = f" ({signal.Signals(stop[0]).name})" if stop else ""
        print(f"\n{args.model}: stopped at step {step}/{args.steps}{why}; checkpoint {ckpt_path}; weights {run_dir / 'weights'}",
              file=out)
    if world > 1:
        torch.distributed.destroy_process_group()
    return step

"""The engine API: load the three nets once, then turn a reference and target poses into frames.

    pipe = Pipeline.from_pretrained("weights", device="auto")
    poses = pipe.interpolate(pose0, pose1, ts)                # PM-Net: (N, 18, 2)
    frames = pipe.transfer(image, parsing, pose0, poses)      # AA -> CT: .images, .parsings
    for chunk in pipe.stream(image, parsing, pose0, poses):   # same, chunk by chunk (flat memory)
        ...
    poses = pipe.keyframe_poses(keys, [1, 10, 25])            # every frame 1..25, PM-Net between keys
    image, parsing, pose0 = pipe.complete_reference(image, None, None)  # estimate a missing S0 / P0

The command line, the benchmarks, the training evaluation and the Blender add-on's engine
process all go through this class: there is no second copy of the chain.
"""
import os
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import PSCError
from .formats.images import NUM_CLASSES, check_image, check_parsing, require_person
from .nets.layers import at_size, subsample_labels
from .nets.pm import line_poses
from .precision import choose as choose_precision
from .formats.poses import as_pose_array, decode_pose_maps, pose_maps, require_joints
from .weights import NETS, load_weights

CHECKOUT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"  # a source checkout's weights/
PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "shipped_weights"  # the same files in an installed wheel


def default_weights_dir():
    """$PSC_WEIGHTS, else ./weights if it holds a checkpoint, else the checkout's weights/, else the
    copy installed with the package (pip install . puts weights/ there as psc_engine/shipped_weights)."""
    if os.environ.get("PSC_WEIGHTS"):
        return Path(os.environ["PSC_WEIGHTS"])
    for folder in (Path("weights"), CHECKOUT_WEIGHTS):
        if (folder / "ct.json").is_file():
            return folder
    return PACKAGE_WEIGHTS


def pick_device(device="auto"):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise PSCError(f"device {device!r} asked for, but this torch build sees no CUDA GPU; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise PSCError(f"unknown device {device!r}; use auto, cpu or cuda") from None


@dataclass
class Frames:
    """Frames start..start+N-1 of a clip: images (N, 256, 256, 3) uint8, parsings (N, 256, 256) uint8,
    poses (N, 18, 2) float32 (NaN = missing)."""

    images: np.ndarray
    parsings: np.ndarray
    poses: np.ndarray
    start: int = 0

    def __len__(self):
        return len(self.images)


CL = torch.channels_last  # NHWC: oneDNN's and cuDNN's fast layout for convs; same values, measured faster


def to_tensor_image(image, device, memory_format=CL):
    """(256, 256, 3) uint8 -> (1, 3, 256, 256) float in [-1, 1], channels-last by default."""
    return (torch.tensor(image, device=device).permute(2, 0, 1)[None].float() / 127.5 - 1).contiguous(memory_format=memory_format)


def to_onehot(labels, device=None, memory_format=CL, dtype=torch.float32):
    """(B, H, W) int labels -> (B, 7, H, W) one-hot, channels-last by default (one_hot's natural layout)."""
    labels = torch.as_tensor(labels, device=device).long()
    return F.one_hot(labels, NUM_CLASSES).permute(0, 3, 1, 2).to(dtype).contiguous(memory_format=memory_format)


def maps_for(poses, device, size=256, memory_format=CL, dtype=torch.float32):
    """(B, 18, 2) poses (256-frame pixels) -> (B, 18, size, size) pose maps on the device, channels-last by default."""
    maps = pose_maps(poses, size=size, channels_last=memory_format == CL, dtype=dtype)
    return maps.to(device).contiguous(memory_format=memory_format)


def load_chain(path=None, device="cpu"):
    """PM, AA and CT from `path` (default: see default_weights_dir), each checked against its
    card: ([pm, aa, ct] float32 nets, {name: card})."""
    path = Path(path) if path is not None else default_weights_dir()
    if not path.is_dir():
        raise PSCError("weights folder not found (expected pm/aa/ct .safetensors + .json)", path)
    loaded = {name: load_weights(path, name, device=device) for name in NETS}
    return [net for net, _ in loaded.values()], {name: card for name, (_, card) in loaded.items()}


def net_size(cards, names):
    """The resolution the nets were trained at (their cards' "size"; 256 if not given). The
    chain runs at that size and its outputs are up-sampled to 256, so a first-stage 128x128
    checkpoint is used as it was trained, not at a scale it never saw."""
    sizes = {int(cards.get(n, {}).get("size") or 256) for n in names}
    if len(sizes) > 1:
        raise PSCError(f"the {' and '.join(names)} weights were trained at different sizes {sorted(sizes)}; "
                       "use a matching pair")
    return sizes.pop()


def full_size_labels(scores, size=256):
    """(B, 7, s, s) class scores -> (B, size, size) labels. Scores from a net run below `size` are
    up-sampled bilinearly before the argmax: smooth class edges, not blocky up-sampled labels."""
    if scores.shape[-1] != size:
        scores = F.interpolate(scores.float(), size=(size, size), mode="bilinear", align_corners=False)
    return scores.argmax(1)


BACKGROUND_MARGIN = 16  # pixels of the 256 frame around either person that CT still paints


def keep_background(image, source, source_person, target_labels, margin=BACKGROUND_MARGIN):
    """Away from the person, the frame is the reference photo itself, at full resolution.

    The camera does not move, so neither does the background; only the person does. Far from
    the person in both the reference and the frame, CT's output (made at its training size and
    up-sampled) can only blur or tint what the photo already shows there, and any small error
    would flicker from frame to frame. At least `margin` pixels around either person stay CT's
    (shadows, disoccluded background; held-out SSIM rose up to about 16 px, flat to 24), with
    a soft edge. The reach is taken on a 4x coarser grid: 1.5 ms a frame, not 12.
    image (B, 3, 256, 256) float; source (1, 3, 256, 256); source_person (1, 1, 256, 256) in {0, 1};
    target_labels (B, 256, 256).
    """
    person = torch.maximum(source_person, (target_labels > 0)[:, None].float())  # (B, 1, 256, 256)
    cells = margin // 4
    near = F.max_pool2d(F.max_pool2d(person, 4), 2 * cells + 1, stride=1, padding=cells)  # (B, 1, 64, 64)
    weight = F.interpolate(near, size=image.shape[-2:], mode="bilinear", align_corners=False)  # 1 = CT's, 0 = the photo's
    return torch.lerp(source.expand_as(image), image, weight)


# torch.compile repays its start-up on the CPU only over long clips: for the shipped chain at
# batch 8 in bfloat16 it starts up in 40 s (inductor's cache warm) to 65 s (cold), then runs
# 1.2-1.35x faster (3-4 ms a frame saved), so it breaks even after 9,000 (warm) to 19,000 (cold)
# frames (README, "Speed"). compile="auto" compiles for clips at least this long; never on CUDA,
# where it is not measured.
AUTO_COMPILE_FRAMES = {"cpu": 20000}


def is_out_of_memory(error):
    return isinstance(error, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(error).lower()


class Pipeline:
    """PM -> AA -> CT on one device.

    precision (see precision.py): "auto" (the default) picks the fastest format that stays within
    precision.TOLERANCE of float32 on this machine: bfloat16 on a CPU with native bfloat16
    instructions, float16 on CUDA, else float32. "float32" forces float32. In bfloat16 on the CPU,
    AA and CT are converted outright (autocast's casts between ops cost a fifth of the speed
    there), with warping and per-class means still in float32; on CUDA, float16 and bfloat16 are
    autocast. PM stays float32 on the CPU: it runs once per key pair, not per frame. `half=True`
    is the older spelling of a reduced precision (bfloat16 on the CPU, float16 on CUDA);
    `half=False` of "float32". compile: "auto" (the default) torch.compiles the per-frame
    decoders for a clip of AUTO_COMPILE_FRAMES or more, where the speed repays the start-up;
    True always, False never. channels_last=False keeps PyTorch's default NCHW layout, as the
    original did (the bench's seed-style loop).
    """

    def __init__(self, pm, aa, ct, device="cpu", precision="auto", cards=None, compile="auto", channels_last=True,
                 half=None):
        self.device = pick_device(device)
        self.fmt = CL if channels_last else torch.contiguous_format
        if half is not None:
            precision = ("float16" if self.device.type == "cuda" else "bfloat16") if half else "float32"
        self.precision, self.precision_reason = choose_precision(precision, self.device)
        self.half = self.precision != "float32"
        # AA's and CT's weights: bfloat16 outright on the CPU; on CUDA float32 under autocast
        self.dtype = torch.bfloat16 if self.half and self.device.type == "cpu" else torch.float32
        self.pm = pm.to(self.device, memory_format=self.fmt).eval()
        self.aa, self.ct = (net.to(self.device, self.dtype, memory_format=self.fmt).eval() for net in (aa, ct))
        self.cards = cards or {}
        self.size = net_size(self.cards, ("aa", "ct"))  # AA and CT work at this resolution
        self.pm_size = net_size(self.cards, ("pm",))
        self.decoders = (self.aa.decode, self.ct.decode)
        self.compile = compile  # True, False or "auto": compile for clips of AUTO_COMPILE_FRAMES or more
        self.compiled = False
        if compile is True:
            self._compile_decoders()

    def _compile_decoders(self):
        """The per-frame decoders, compiled for each batch shape seen (the first batch pays the
        compile); if compiling fails, render() falls back to eager and says so. On the CPU the
        weights are frozen into the graph, so oneDNN packs them once, not every call (+10 % at
        batch 4 here). A process-wide inductor setting; it only affects compiles."""
        if self.device.type == "cpu":
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True
        self.decoders = (torch.compile(self.aa.decode, dynamic=False), torch.compile(self.ct.decode, dynamic=False))
        self.compiled = True

    @classmethod
    def from_pretrained(cls, path=None, device="auto", precision="auto", compile="auto", half=None):
        """Load PM, AA and CT from `path` (default: see default_weights_dir), each checked against its card."""
        dev = pick_device(device)
        nets, cards = load_chain(path, dev)
        pipe = cls(*nets, device=dev, precision=precision, cards=cards, compile=compile, half=half)
        pipe.weights_dir = Path(path) if path is not None else default_weights_dir()
        return pipe

    @property
    def placeholder(self):
        """True when any net is an untrained placeholder."""
        return any(card.get("placeholder") for card in self.cards.values())

    def _autocast(self):
        """float16 or bfloat16 autocast on CUDA; on the CPU the nets already hold their dtype."""
        if self.half and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=getattr(torch, self.precision))
        return nullcontext()

    @torch.inference_mode()
    def interpolate(self, pose0, pose1, ts, batch_size=32):
        """PM-Net: two (18, 2) reference poses and N values of t -> (N, 18, 2) poses (NaN = missing)."""
        p0, p1 = as_pose_array(pose0, "pose0"), as_pose_array(pose1, "pose1")
        ts = np.atleast_1d(np.asarray(ts, dtype=np.float32))
        if not np.all((ts >= 0) & (ts <= 1)):
            raise PSCError("interpolate: every t must lie in [0, 1]")
        maps0 = maps_for(p0[None], self.device, self.pm_size, self.fmt)  # (1, 18, H, W)
        maps1 = maps_for(p1[None], self.device, self.pm_size, self.fmt)
        out = []
        for i in range(0, len(ts), batch_size):
            t_np = ts[i:i + batch_size]
            line = maps_for(line_poses(torch.from_numpy(p0)[None], torch.from_numpy(p1)[None], torch.from_numpy(t_np)),
                            self.device, self.pm_size, self.fmt)
            t = torch.from_numpy(t_np).to(self.device)
            with self._autocast():
                maps = self.pm(maps0.expand(len(t), -1, -1, -1), maps1.expand(len(t), -1, -1, -1), t, line)
            out.append(decode_pose_maps(maps.float().cpu()))
        return np.concatenate(out) if out else np.zeros((0, 18, 2), np.float32)

    def keyframe_poses(self, key_poses, key_frames):
        """Every frame's pose from key poses at 1-based frame numbers: the keys themselves, and
        PM-Net between each pair of neighbouring keys at each frame's fraction of the way.
        key_poses (K, 18, 2), key_frames K strictly increasing ints -> (key_frames[-1] - key_frames[0] + 1, 18, 2)."""
        keys = as_pose_array(key_poses, "key_poses").reshape(-1, 18, 2)
        frames = [int(f) for f in key_frames]
        if len(frames) != len(keys):
            raise PSCError(f"{len(keys)} key poses but {len(frames)} key frames")
        if len(frames) < 2 or any(b <= a for a, b in zip(frames, frames[1:])):
            raise PSCError("key frames must be at least two strictly increasing frame numbers")
        out = [keys[:1]]
        for (fa, pa), (fb, pb) in zip(zip(frames, keys), zip(frames[1:], keys[1:])):
            ts = (np.arange(fa + 1, fb) - fa) / (fb - fa)  # the frames strictly between the two keys
            out += [self.interpolate(pa, pb, ts) if len(ts) else np.zeros((0, 18, 2), np.float32), pb[None]]
        return np.concatenate(out)

    def complete_reference(self, image, parsing, pose):
        """Estimate a missing parsing and/or pose (None) with the photo nets of this pipeline's
        weights folder (prepare.py); given ones are kept. Returns (image, parsing, pose)."""
        from .prepare import complete_reference

        return complete_reference(image, parsing, pose, getattr(self, "weights_dir", None), self.device)

    def between(self, image, parsing, pose0, pose1, ts, batch_size=8):
        """The original release's job for one sample: PM-Net poses at each t between pose0 and pose1,
        then AA -> CT. Frames with .poses the interpolated poses."""
        poses = self.interpolate(pose0, pose1, ts)
        frames = self.transfer(image, parsing, pose0, poses, batch_size=batch_size)
        return Frames(frames.images, frames.parsings, poses)

    @torch.inference_mode()
    def encode_reference(self, image, parsing, pose):
        """The reference's encoder features, computed once per clip and reused for every frame."""
        image = check_image(image)
        parsing = require_person(check_parsing(parsing))
        pose = require_joints(as_pose_array(pose, "pose"))
        full = to_tensor_image(image, self.device, self.fmt)  # (1, 3, 256, 256) float32, also for keep_background
        img, labels = at_size(full, torch.from_numpy(parsing[None]), self.size)
        img = img.to(self.dtype).contiguous(memory_format=self.fmt)
        onehot = to_onehot(labels, self.device, self.fmt, self.dtype)
        maps = maps_for(pose[None], self.device, self.size, self.fmt, self.dtype)
        with self._autocast():
            return {"aa": self.aa.encode_source(onehot, maps), "ct": self.ct.encode_source(img, onehot, maps),
                    "image": full, "parsing": parsing, "pose": pose,  # for AA's warp input (warp=True)
                    "person": torch.as_tensor(parsing > 0, device=self.device)[None, None].float()}  # (1, 1, 256, 256)

    @torch.inference_mode()
    def render(self, reference, target_poses, target_parsings=None):
        """One batch: reference features and (B, 18, 2) poses -> (images (B,256,256,3), parsings (B,256,256))
        uint8 tensors on the device. Given target_parsings (B, 256, 256), CT uses them instead of AA's
        (evaluation with the true shape)."""
        maps = maps_for(target_poses, self.device, self.size, self.fmt, self.dtype)
        warped = None
        if self.aa.warp and target_parsings is None:  # (B, 7, size, size): the reference's parsing on each target pose
            from .nets.warp import warped_onehot  # scipy's spatial and ndimage: 0.5 s of import, only for such an AA

            warped = warped_onehot(reference["parsing"], reference["pose"], np.asarray(target_poses), self.size)
            warped = warped.to(self.device, self.dtype).contiguous(memory_format=self.fmt)
        try:
            labels, image = self._decode(reference, maps, target_parsings, warped)
        except Exception as e:  # noqa: BLE001 -- only a compiled decoder's failure is caught here
            if not self.compiled or is_out_of_memory(e):
                raise
            warnings.warn(f"torch.compile failed ({type(e).__name__}); running eager")
            self.decoders, self.compiled, self.compile = (self.aa.decode, self.ct.decode), False, False
            labels, image = self._decode(reference, maps, target_parsings, warped)
        image = ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
        return image, labels.to(torch.uint8)

    def _decode(self, reference, maps, target_parsings=None, warped=None):
        """AA then CT at self.size; returns labels (B, 256, 256) and image (B, 3, 256, 256)."""
        aa_decode, ct_decode = self.decoders
        with self._autocast():
            if target_parsings is None:
                logits = aa_decode(reference["aa"], maps, warped)  # (B, 7, size, size)
                labels_full = full_size_labels(logits)
                # CT reads AA's class probabilities, not their argmax: where AA is unsure (an edge,
                # a hem) CT sees it, as it did in training (train --shape_from)
                shape = logits.float().softmax(1).to(self.dtype).contiguous(memory_format=self.fmt)
            else:
                labels_full = torch.as_tensor(target_parsings, device=self.device).long()
                shape = to_onehot(subsample_labels(labels_full, self.size), memory_format=self.fmt, dtype=self.dtype)
            image = ct_decode(reference["ct"], shape, maps)["image"]
            if self.size != 256:
                # in NCHW: the CPU's bicubic kernel is 2.8x slower on channels-last input
                image = F.interpolate(image.float().contiguous(), size=(256, 256), mode="bicubic", align_corners=False)
            image = keep_background(image.float(), reference["image"], reference["person"], labels_full)
            return labels_full, image

    def stream(self, image, parsing, pose, target_poses, batch_size=8, on_warning=None):
        """Yield Frames chunks of at most batch_size frames; memory stays flat in the number of frames.

        Out of memory on a batch: the batch size halves (down to 1) and the same frames are tried
        again; `on_warning` (default: warnings.warn) is told once per fallback.
        """
        targets = as_pose_array(target_poses, "target_poses").reshape(-1, 18, 2)
        if batch_size < 1:
            raise PSCError(f"batch_size must be at least 1, got {batch_size}")
        reference = self.encode_reference(image, parsing, pose)
        if self.compile == "auto" and not self.compiled and len(targets) >= AUTO_COMPILE_FRAMES.get(self.device.type, np.inf):
            (on_warning or warnings.warn)(f"compiling the decoders for this {len(targets)}-frame clip (about a "
                                          "minute, once; about 1.2x faster after)")
            self._compile_decoders()
        start = 0
        while start < len(targets):
            chunk = targets[start:start + batch_size]
            padded = chunk
            if self.compiled and len(chunk) < batch_size:  # a compiled decoder would recompile for a new shape
                padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - len(chunk), 0)])
            try:
                images, parsings = self.render(reference, torch.from_numpy(padded))
                images, parsings = images[:len(chunk)], parsings[:len(chunk)]
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as e:
                if not is_out_of_memory(e) or batch_size == 1:
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                batch_size //= 2
                (on_warning or warnings.warn)(f"out of memory at batch size {len(chunk)}; continuing with {batch_size}")
                continue
            yield Frames(images.cpu().numpy(), parsings.cpu().numpy(), chunk, start)
            start += len(chunk)

    def transfer(self, image, parsing, pose, target_poses, batch_size=8):
        """All frames at once: .images (N, 256, 256, 3) uint8, .parsings (N, 256, 256) uint8."""
        chunks = list(self.stream(image, parsing, pose, target_poses, batch_size))
        if not chunks:
            return Frames(np.zeros((0, 256, 256, 3), np.uint8), np.zeros((0, 256, 256), np.uint8),
                          np.zeros((0, 18, 2), np.float32))
        return Frames(*(np.concatenate([getattr(c, k) for c in chunks]) for k in ("images", "parsings", "poses")))

"""What a training run is told: the nets `train` knows (NETS) and its options (TrainConfig).

Adding a net to `train` is one entry in NETS (with its class in weights.py, its batch builder in
batches.py and its loss in losses.py). TrainConfig holds every option with its default; the
command line builds `psc train`'s options from it (`add_arguments`), so the defaults live here.
Standard library only: building the parser costs no torch import.
"""
import argparse
from dataclasses import MISSING, asdict, dataclass, field, fields

from ..errors import PSCError


@dataclass(frozen=True)
class Net:
    """One trainable net: what it is, how its batches and loss are made, what data it needs."""

    what: str  # one line for --help
    batch: str  # its batch builder in training/batches.py
    loss: str  # its loss on one batch in training/losses.py: (net, batch, extras) -> (loss, terms)
    images: bool  # reads photos; False: parsings and poses are all it needs (geometry-only data feeds it)
    size: int = 256  # default training resolution
    options: tuple = ()  # the net-specific TrainConfig options it accepts


NETS = {
    "pm": Net("PM-Net: in-between poses of a turn", "pm_batch", "pm_step", images=False, options=("geometry_mix",)),
    "aa": Net("AA-Net: the target parsing", "shape_batch", "aa_step", images=False, options=("geometry_mix", "warp")),
    "ct": Net("CT-Net: the target photo", "pair_batch", "ct_step", images=True,
              options=("shape_from", "shape_mix", "ssim_weight", "photometric")),
    "pose": Net("the keypoint net `prepare` uses", "photo_batch", "pose_step", images=True, options=("photometric",)),
    "parsing": Net("the parser `prepare` uses", "photo_batch", "parsing_step", images=True,
                   options=("photometric", "backdrop")),
}


def option(default=MISSING, help="", net_specific=False, **argparse_kw):
    """A TrainConfig field with its command-line help; net_specific: only some NETS accept it."""
    return field(default=default, metadata={"help": help, "net_specific": net_specific, **argparse_kw})


@dataclass
class TrainConfig:
    data_dir: list = option(help="train-layout folder(s) or folder(s) of .tar shards (repeatable; several mix: "
                            "geometry-only folders feed PM and AA only)", nargs="+", action="extend")
    model: str = option(choices=tuple(NETS), help="; ".join(f"{k}: {n.what}" for k, n in NETS.items()))
    out: str = option("runs", help="run folder: <out>/<model>/checkpoint.pt, losses.csv, losses.png, weights/")
    resume: bool = option(False, help="continue from <out>/<model>/checkpoint.pt")
    steps: int = option(20000, help="total steps (the lr halves every quarter)")
    batch: int = option(4)
    lr: float = option(4e-4)
    base: int = option(16, help="base channel width")
    size: int = option(None, type=int, choices=(128, 256),
                       help="training resolution (default: the net's, 256; 128: a cheaper first stage)")
    warp: bool = option(False, net_specific=True, help="AA only: the net also reads the source parsing warped "
                        "piecewise-affinely onto the target pose (with --init from an AA without it, the new input "
                        "starts at zero weight)")
    init: str = option(None, help="start from these trained weights (a folder with <model>.safetensors + .json), "
                       "fresh optimiser")
    shape_from: str = option(None, net_specific=True, help="CT only: a weights folder whose AA-Net (frozen) gives CT "
                             "the target parsings it reads on --shape_mix of the items, as in the chain; losses stay on the truth")
    shape_mix: float = option(0.5, net_specific=True, help="share of items where CT reads AA's parsing (with --shape_from)")
    ema: float = option(0.0, help="keep an exponential moving average of the weights with this decay (e.g. 0.999) "
                        "and export it instead of the last step's weights; 0: off")
    ssim_weight: float = option(1.0, net_specific=True, help="CT only: weight of the SSIM term against the others "
                                "(L1, gradients, face and clothing L2, texture, flow), each weighted as losses.py says")
    framing: float = option(0.5, help="share of training pairs reframed as fashion photos: zoomed so the person fills "
                            "the frame, cut by the bottom edge anywhere from below the feet to mid-thigh (source and "
                            "target share the crop; joints pushed out of the frame count as missing)")
    head_cut: float = option(0.15, help="share of the reframed pairs whose top edge cuts the head (anywhere from the "
                             "eyes to the chin), as shop photos that show the garment and not the face do")
    backdrop: float = option(0.5, net_specific=True, help="parser only: share of photos painted plain grey outside "
                             "their person mask, grown or shrunk by up to 6 px: what `prepare` gives the parser, "
                             "MediaPipe's mask drawing the line")
    photometric: float = option(0.5, net_specific=True, help="share of photos given a camera's look: exposure and white "
                                "balance, slight blur (CT: the same on source and target), noise and JPEG (the source only)")
    geometry_mix: float = option(None, type=float, net_specific=True, help="PM and AA: share of items drawn from "
                                 "geometry-only samples when both kinds are given (default: in proportion to their counts)")
    minutes: float = option(0.0, help="stop (with a checkpoint) after this many minutes")
    checkpoint_minutes: float = option(5.0)
    seed: int = option(0)
    no_augment: bool = option(False, help="no flips, affines, framings, garment colours or camera looks")
    device: str = option("auto")
    precision: str = option("auto", choices=("auto", "fp32", "bf16"),
                            help="bf16: the nets run under bfloat16 autocast (weights, optimiser and SSIM stay float32); "
                            "auto: bf16 on CUDA, fp32 on the CPU (bf16 there trained CT 1.22x faster on a CPU with "
                            "AVX512-BF16 or AMX)")
    quiet: bool = option(False)

    @property
    def net(self):
        return NETS[self.model]

    @property
    def train_size(self):
        return self.size or self.net.size

    def check(self):
        """Option values that cannot work, and net-specific options given to a net that ignores them."""
        if self.model not in NETS:
            raise PSCError(f"unknown --model {self.model!r}; choose one of {', '.join(NETS)}")
        defaults = TrainConfig(data_dir=[], model=self.model)
        for f in fields(self):
            if f.metadata["net_specific"] and f.name not in self.net.options and getattr(self, f.name) != getattr(defaults, f.name):
                takers = [k for k, n in NETS.items() if f.name in n.options]
                raise PSCError(f"--{f.name} only applies to --model {' or '.join(takers)}")
        if self.ema and not 0 < self.ema < 1:
            raise PSCError(f"--ema must lie in (0, 1), e.g. 0.999, got {self.ema}")
        for name in ("shape_mix", "framing", "head_cut", "backdrop", "photometric", "geometry_mix"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise PSCError(f"--{name} must lie in [0, 1], got {value}")
        if self.ssim_weight < 0:
            raise PSCError(f"--ssim_weight must be at least 0, got {self.ssim_weight}")
        if self.steps < 1 or self.batch < 1:
            raise PSCError("--steps and --batch must be at least 1")
        return self

    def as_dict(self):
        return asdict(self)

    @classmethod
    def add_arguments(cls, parser):
        """The dataclass's fields as argparse options of the same names and defaults."""
        for f in fields(cls):
            kw = {k: v for k, v in f.metadata.items() if k not in ("help", "net_specific")}
            kw["help"] = f.metadata["help"] or None
            if f.default is MISSING:
                kw["required"] = True
            else:
                kw["default"] = f.default
            if f.type is bool:
                kw["action"] = "store_true"
            elif "type" not in kw and f.type is not list:
                kw["type"] = f.type
            parser.add_argument(f"--{f.name}", **kw)
        return parser

    @classmethod
    def from_args(cls, namespace):
        """A TrainConfig from parsed arguments (argparse.Namespace or a dict)."""
        values = vars(namespace) if isinstance(namespace, argparse.Namespace) else dict(namespace)
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

"""CT-Net: the content. Source image I0 with its parsing S0 and pose P0, and a target parsing
S_t with its pose P_t -> the person of I0 in the target shape.

- Flow: one shared encoder reads (parsing, pose) of source and target; their features predict a
  backward flow coarse to fine (1/16, then residuals at 1/8 and 1/4) in normalised units, so
  it can move a limb across the frame, plus at 1/4 a visibility mask (where the target has a
  source correspondence).
- Content: separate clothing and body encoders read I0 masked by S0; a texture encoder reads
  the Sobel gradient magnitude of the clothing image so stripes and prints keep their edges.
  Their features are warped by the flow at every level.
- Style codes: per class, the mean source feature over that class's region, spread back over
  the target through its parsing (one einsum each way); where the mask says the source never
  showed a region, the style fills it.
- Decoders: the clothing decoder's features merge into the body decoder at each level; the
  body decoder ends in RGB plus a blend mask against I0 warped at full resolution, which keeps
  texture sharp where the source shows it.

All source-side work is in `encode_source` (once per clip); `decode` runs per frame.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..formats.images import CLOTHING_CLASSES, NUM_CLASSES
from .layers import LEVELS, Encoder, Up, conv_act, resize_flow, warp, widths
from ..formats.poses import NUM_JOINTS

FLOW_LEVELS = (4, 3, 2)  # coarse to fine; level 2 (1/4 scale) also predicts the visibility mask
CONTENT_LEVELS = (1, 2, 3, 4)


def sobel_magnitude(img):
    """(B, 3, H, W) image -> (B, 1, H, W) gradient magnitude of its grey level."""
    grey = img.mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=img.device, dtype=img.dtype) / 4
    k = torch.stack([kx, kx.t()])[:, None]  # (2, 1, 3, 3)
    g = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), k)
    return torch.sqrt((g * g).sum(1, keepdim=True) + 1e-6)


def class_masks(onehot):
    """(B, 7, H, W) one-hot -> clothing mask and body mask, (B, 1, H, W) each."""
    cloth = onehot[:, list(CLOTHING_CLASSES)].sum(1, keepdim=True)
    body = onehot[:, 1:].sum(1, keepdim=True) - cloth
    return cloth, body


def downsample(x, level):
    return F.avg_pool2d(x, 2 ** level) if level else x


def style_codes(feat, onehot):
    """Per-class mean of (1, C, h, w) features over (1, 7, h, w) class weights -> (1, 7, C).
    Summed in float32 (a bfloat16 sum over thousands of pixels drifts), returned in feat's dtype."""
    onehot, dtype = onehot.float(), feat.dtype
    area = onehot.sum((2, 3))[..., None]  # (1, 7, 1)
    return (torch.einsum("bkhw,bchw->bkc", onehot, feat.float()) / (area + 1e-6)).to(dtype)


def spread_style(codes, onehot):
    """(1 or B, 7, C) codes over a (B, 7, h, w) target parsing -> (B, C, h, w), in the parsing's layout."""
    codes = codes.expand(onehot.shape[0], -1, -1)
    if onehot.is_contiguous(memory_format=torch.channels_last):  # write NHWC directly: no copy before the convs
        return torch.einsum("bkhw,bkc->bhwc", onehot, codes).permute(0, 3, 1, 2)
    return torch.einsum("bkhw,bkc->bchw", onehot, codes)


def mix(a, b, weight):
    """a + weight * (b - a) in one pass (torch.lerp), in a's dtype (autocast can leave them mixed)."""
    return torch.lerp(a, b.to(a.dtype), weight.to(a.dtype))


class FlowHead(nn.Module):
    def __init__(self, cin, ch, cout):
        super().__init__()
        self.net = nn.Sequential(conv_act(cin, ch), conv_act(ch, ch), nn.Conv2d(ch, cout, 3, 1, 1))
        nn.init.zeros_(self.net[-1].bias)
        self.net[-1].weight.data.mul_(0.1)  # start near the identity warp

    def forward(self, x):
        return self.net(x)


class CTNet(nn.Module):
    def __init__(self, base=16):
        super().__init__()
        self.config = {"base": base}
        w = self.w = widths(base)
        self.parsing_encoder = Encoder(NUM_CLASSES + NUM_JOINTS, base, full_res=False)
        self.cloth_encoder = Encoder(3, base, full_res=False)
        self.body_encoder = Encoder(3, base, full_res=False)
        self.texture_encoder = Encoder(1, base, full_res=False)
        self.flow_heads = nn.ModuleDict({
            str(l): FlowHead(2 * w[l] + (0 if l == LEVELS else 2), w[l] // 2, 3 if l == FLOW_LEVELS[-1] else 2)
            for l in FLOW_LEVELS
        })
        self.cloth_in = conv_act(2 * w[4], w[4])
        self.cloth_ups = nn.ModuleList(Up(w[l + 1], 2 * w[l], w[l]) for l in (3, 2, 1))
        self.body_in = conv_act(3 * w[4], w[4])
        self.body_ups = nn.ModuleList(Up(w[l + 1], 3 * w[l], w[l]) for l in (3, 2, 1))
        self.full = Up(w[1], 3 + NUM_CLASSES, w[0])
        self.head = nn.Conv2d(w[0], 4, 3, 1, 1)

    def encode_source(self, image, parsing_onehot, pose_maps):
        """Everything that depends only on the reference: (1, 3|7|18, H, W) -> a dict of features."""
        cloth, body = class_masks(parsing_onehot)
        cloth_img = image * cloth
        parsing = self.parsing_encoder(torch.cat([parsing_onehot, pose_maps], 1))
        c = self.cloth_encoder(cloth_img)
        b = self.body_encoder(image * body)
        x = self.texture_encoder(sobel_magnitude(cloth_img))
        # Clothing and body channels side by side, so one warp and one style spread serve both.
        # What decode warps is kept in float32, since warp samples in float32 (a no-op unless
        # the nets run in bfloat16): converted once per clip instead of once per frame.
        src = {"image": image.float(), "parsing": parsing}
        for l in CONTENT_LEVELS:
            onehot_l = downsample(parsing_onehot, l)
            src[f"content{l}"] = torch.cat([c[l] + x[l], b[l]], 1).float()  # (1, 2C, h, w)
            src[f"style{l}"] = torch.cat([style_codes(c[l], onehot_l), style_codes(b[l], onehot_l)], 2)  # (1, 7, 2C)
        return src

    def flows(self, src, tgt):
        """Coarse-to-fine backward flow. Returns {level: (B, 2, h, w)} and visibility (B, 1, h2, w2)."""
        b = tgt[LEVELS].shape[0]
        flows, flow = {}, None
        for l in FLOW_LEVELS:
            s = src["parsing"][l]  # (1 or B, C, h, w): warp broadcasts it over the batch
            if flow is None:
                out = self.flow_heads[str(l)](torch.cat([s.expand(b, -1, -1, -1), tgt[l]], 1))
                flow = out[:, :2]
            else:  # a residual on the up-sampled coarser flow
                flow = resize_flow(flow, tgt[l].shape[-2:])
                out = self.flow_heads[str(l)](torch.cat([warp(s, flow), tgt[l], flow], 1))
                flow = flow + out[:, :2]
            flows[l] = flow
        visibility = torch.sigmoid(out[:, 2:3])
        return flows, visibility

    def decode(self, src, parsing_onehot, pose_maps):
        """Per-frame: target (B, 7, H, W) one-hot and (B, 18, H, W) maps -> dict with 'image'
        (B, 3, H, W) in [-1, 1], 'flows', 'visibility', 'warped' (I0 warped at full size)."""
        tgt = self.parsing_encoder(torch.cat([parsing_onehot, pose_maps], 1))
        flows, vis = self.flows(src, tgt)
        size = lambda l: tgt[l].shape[-2:]
        flow_at = {l: flows[l] if l in flows else resize_flow(flows[FLOW_LEVELS[-1]], size(l)) for l in CONTENT_LEVELS}
        skips = {}
        onehot_l = parsing_onehot
        for l in CONTENT_LEVELS:  # levels 1..4: each one-hot halves the previous (block means of block means)
            v = F.interpolate(vis, size=size(l), mode="bilinear", align_corners=False)
            onehot_l = F.avg_pool2d(onehot_l, 2)
            # visible: the warped source; unseen: the style codes. (B, 2C, h, w), clothing channels first
            both = mix(spread_style(src[f"style{l}"], onehot_l), warp(src[f"content{l}"], flow_at[l]), v)
            skips["cloth", l], skips["body", l] = both.split(self.w[l], 1)
        h = self.cloth_in(torch.cat([skips["cloth", 4], tgt[4]], 1))
        cloth_feats = {4: h}
        for up, l in zip(self.cloth_ups, (3, 2, 1)):
            h = up(h, skips["cloth", l], tgt[l])
            cloth_feats[l] = h
        h = self.body_in(torch.cat([skips["body", 4], tgt[4], cloth_feats[4]], 1))
        for up, l in zip(self.body_ups, (3, 2, 1)):
            h = up(h, skips["body", l], cloth_feats[l], tgt[l])
        full_flow = resize_flow(flows[FLOW_LEVELS[-1]], parsing_onehot.shape[-2:])
        warped_image = warp(src["image"], full_flow)
        out = self.head(self.full(h, warped_image, parsing_onehot))  # (B, 4, H, W): RGB and blend logits
        rgb, blend = torch.tanh(out)[:, :3], torch.sigmoid(out)[:, 3:4]  # whole-tensor ops: fast on NHWC
        image = mix(rgb, warped_image, blend)
        return {"image": image, "flows": flows, "visibility": vis, "warped": warped_image, "blend": blend}

    def forward(self, image, source_onehot, source_maps, target_onehot, target_maps):
        return self.decode(self.encode_source(image, source_onehot, source_maps), target_onehot, target_maps)

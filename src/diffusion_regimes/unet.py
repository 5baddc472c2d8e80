"""The noise-predicting UNet of the learned denoisers (SCIENCE.md section 6).

A DDPM-style UNet (Ho et al. 2020): residual blocks with GroupNorm + SiLU, a sinusoidal embedding of
the DDPM step ``k`` added in every residual block, self-attention at chosen resolutions, strided-conv
downsampling, nearest-neighbour + conv upsampling and skip connections between the two paths.
The network maps ``(x(k), k)`` to the predicted noise ``xi_theta``; the score is
``-xi_theta / sqrt(1 - alpha_bar(k))`` (SCIENCE.md section 1; see :mod:`diffusion_regimes.train`).

The paper configuration (``PRESETS["paper"]``): 64 base channels, multipliers (1, 2, 4, 4), two
residual blocks per level, attention at the two middle levels (16x16 and 8x8 for a 32x32 input),
dropout 0.1.  Laid out as in DDPM (``num_res_blocks + 1`` residual blocks per up level, a middle
ResBlock-Attention-ResBlock), this has 25 636 483 parameters at 3x32x32 (paper: "about 25.7 M", 0.3 %
off).  The same code with DDPM's CIFAR-10 settings (128 channels, (1, 2, 2, 2), attention at 16x16) gives
DDPM's published 35.7 M (35 746 307), which checks that the layout is DDPM's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from diffusion_regimes.errors import ConfigError


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the UNet.

    ``attention_levels`` are level indices (0 = full resolution) whose residual blocks are followed by
    self-attention; the paper's "two middle levels" of four are ``(1, 2)``.
    """

    in_channels: int = 1
    image_size: int = 32
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (1, 2)
    dropout: float = 0.1
    groups: int = 32  # GroupNorm groups; every channel count must be divisible by it

    def __post_init__(self) -> None:
        levels = len(self.channel_mult)
        if levels < 1 or self.num_res_blocks < 1 or self.base_channels < 1 or self.in_channels < 1:
            raise ConfigError(f"unet: invalid architecture {self}")
        if any(not 0 <= lv < levels for lv in self.attention_levels):
            raise ConfigError(
                f"unet.attention_levels must lie in [0, {levels - 1}], got {self.attention_levels}"
            )
        if self.image_size % 2 ** (levels - 1):
            raise ConfigError(
                f"unet: image_size {self.image_size} is not divisible by 2^{levels - 1} "
                f"({levels} levels of channel_mult)"
            )
        for mult in self.channel_mult:
            if (self.base_channels * mult) % self.groups:
                raise ConfigError(
                    f"unet: base_channels*mult = {self.base_channels * mult} "
                    f"not divisible by groups={self.groups}"
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"unet.dropout must lie in [0, 1), got {self.dropout}")


# Named architectures; ``in_channels``/``image_size`` are set from the data (see :func:`preset`).
PRESETS: dict[str, UNetConfig] = {
    # SCIENCE.md section 6; 25.64 M parameters at 3x32x32.
    "paper": UNetConfig(base_channels=64, channel_mult=(1, 2, 4, 4), num_res_blocks=2,
                        attention_levels=(1, 2), dropout=0.1, groups=32),
    # The default CPU run: same layout, narrower and shallower (0.28 M parameters, 0.13 GFLOP per
    # 1x32x32 image; a 2-core CPU trains a few hundred batches in minutes, see config/README.md).
    "small": UNetConfig(base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                        attention_levels=(2,), dropout=0.1, groups=8),
    # The default CPU run on 28x28 digits zero-padded to 32x32: the narrow full-resolution level of `small`
    # (its cost dominates), more width and two blocks at 16x16 and 8x8 where convolutions are 4-16x cheaper,
    # attention only at 8x8 (64 positions).  config/README.md gives its measured cost and sample quality.
    "digits": UNetConfig(base_channels=16, channel_mult=(1, 2, 4), num_res_blocks=2,
                         attention_levels=(2,), dropout=0.0, groups=8),
    # Tests and the tiny workflow: seconds on a CPU.
    "tiny": UNetConfig(base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                       attention_levels=(1,), dropout=0.0, groups=4),
}


def preset(name: str, *, in_channels: int, image_size: int) -> UNetConfig:
    """The named architecture for images of ``in_channels`` x ``image_size`` x ``image_size``."""
    if name not in PRESETS:
        raise ConfigError(f"unet.preset: {name!r} is not valid; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], in_channels=in_channels, image_size=image_size)


@dataclass(frozen=True)
class UNetSpec:
    """Config section ``unet``: a named preset, with any architecture field optionally overridden.

    Input channels and image size come from the data, never from the config.
    """

    preset: str = "small"
    base_channels: int | None = None
    channel_mult: tuple[int, ...] | None = None
    num_res_blocks: int | None = None
    attention_levels: tuple[int, ...] | None = None
    dropout: float | None = None
    groups: int | None = None

    def resolve(self, *, in_channels: int, image_size: int) -> UNetConfig:
        """The architecture for images of ``in_channels`` x ``image_size`` x ``image_size``."""
        base = preset(self.preset, in_channels=in_channels, image_size=image_size)
        overrides = {
            name: getattr(self, name)
            for name in ("base_channels", "channel_mult", "num_res_blocks", "attention_levels", "dropout",
                         "groups")
            if getattr(self, name) is not None
        }
        return replace(base, **overrides)


def timestep_embedding(k: torch.Tensor, dim: int, *, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al.) of the DDPM steps ``k`` ``(B,)`` -> ``(B, dim)`` float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=k.device) / half)
    args = k.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, plus the projected step embedding, GroupNorm-SiLU-dropout-conv, residual."""

    def __init__(self, c_in: int, c_out: int, *, emb_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        # Zero-initialised last conv: every block starts as the identity (improved-diffusion's choice).
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head spatial self-attention with a residual connection (DDPM's AttnBlock)."""

    def __init__(self, channels: int, *, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)  # (B, HW, C)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Stage(nn.Module):
    """A residual block optionally followed by attention."""

    def __init__(self, res: ResBlock, attn: Attention | None) -> None:
        super().__init__()
        self.res = res
        self.attn = attn if attn is not None else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, emb))


class UNet(nn.Module):
    """``forward(x, k)``: ``x`` ``(B, C, H, W)``, ``k`` ``(B,)`` long DDPM steps -> noise ``(B, C, H, W)``."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.base_channels
        emb_dim = 4 * ch
        g = config.groups

        def block(c_in: int, c_out: int, level: int) -> _Stage:
            res = ResBlock(c_in, c_out, emb_dim=emb_dim, dropout=config.dropout, groups=g)
            return _Stage(res, Attention(c_out, groups=g) if level in config.attention_levels else None)

        self.embed = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(config.in_channels, ch, 3, padding=1)

        # Down path: record the channels of every activation kept for a skip connection.
        skips = [ch]
        c = ch
        self.down = nn.ModuleList()
        levels = len(config.channel_mult)
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                self.down.append(block(c, ch * mult, level))
                c = ch * mult
                skips.append(c)
            if level < levels - 1:
                self.down.append(Downsample(c))
                skips.append(c)

        self.mid1 = ResBlock(c, c, emb_dim=emb_dim, dropout=config.dropout, groups=g)
        self.mid_attn = Attention(c, groups=g)
        self.mid2 = ResBlock(c, c, emb_dim=emb_dim, dropout=config.dropout, groups=g)

        # Up path: num_res_blocks + 1 blocks per level, each consuming one skip.
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            mult = config.channel_mult[level]
            for _ in range(config.num_res_blocks + 1):
                self.up.append(block(c + skips.pop(), ch * mult, level))
                c = ch * mult
            if level > 0:
                self.up.append(Upsample(c))
        assert not skips

        self.norm_out = nn.GroupNorm(g, c)
        self.conv_out = nn.Conv2d(c, config.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        emb = self.embed(timestep_embedding(k, self.config.base_channels).to(x.dtype))
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, _Stage) else layer(h)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for layer in self.up:
            if isinstance(layer, _Stage):
                h = layer(torch.cat([h, hs.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

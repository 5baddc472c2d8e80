"""The noise-predicting UNet of the learned denoisers (docs/science.md section 6).

A DDPM-style UNet (Ho et al. 2020): residual blocks with GroupNorm + SiLU, a sinusoidal embedding of
the DDPM step ``k`` added in every residual block, self-attention at chosen resolutions, strided-conv
downsampling, nearest-neighbour + conv upsampling and skip connections between the two paths.
The network maps ``(x(k), k)`` to the predicted noise ``xi_theta``; the score is
``-xi_theta / sqrt(1 - alpha_bar(k))`` (docs/science.md section 1; see :mod:`diffusion_regimes.train`).

The paper configuration (``PRESETS["paper"]``): 64 base channels, multipliers (1, 2, 4, 4), two
residual blocks per level, attention at the two middle levels (16x16 and 8x8 for a 32x32 input),
dropout 0.1, and the details of the authors' published network: GroupNorm with 8 groups, 4-head
attention, GELU inside the time-embedding MLP, channel-wise dropout (``Dropout2d``) and PyTorch's default
initialisation.  Laid out as in DDPM (``num_res_blocks + 1`` residual blocks per up level, a middle
ResBlock-Attention-ResBlock), this has 25 636 483 trainable parameters at 3x32x32 (paper: "about 25.7 M",
0.3 % off: the authors' count adds their frozen 1000 x 64 table of sinusoidal step embeddings, 64 000
values that are computed on the fly here).  The same code with DDPM's CIFAR-10 settings (128 channels,
(1, 2, 2, 2), attention at 16x16) gives DDPM's published 35.7 M (35 746 307), which checks that the
layout is DDPM's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

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
    attention_heads: int = 1  # heads of every self-attention layer; channels there must be divisible by it
    time_activation: Literal["silu", "gelu"] = "silu"  # non-linearity inside the step-embedding MLP
    # "element": nn.Dropout (one mask entry per activation); "channel": nn.Dropout2d (whole feature maps)
    dropout_kind: Literal["element", "channel"] = "element"
    # Zero-initialised last conv of each residual block, attention projection and output conv (every block
    # starts as the identity, improved-diffusion's choice); False keeps PyTorch's default initialisation.
    zero_init: bool = True
    # Attention weights: "default" = PyTorch's Conv2d init of the 1x1 qkv and output convs; "xavier" = as
    # nn.MultiheadAttention initialises itself (the authors' attention): Xavier-uniform qkv weights over
    # the (3C, C) matrix, zero qkv and output biases, the output weights as a Linear layer's
    attention_init: Literal["default", "xavier"] = "default"
    # "group": GroupNorm before every convolution of a residual block, attention and the output (DDPM);
    # "none": no normalisation layer (with no attention either, every output pixel then depends on a bounded
    # window of the input: the `local` preset)
    normalisation: Literal["group", "none"] = "group"
    mid_attention: bool = True  # self-attention between the two middle residual blocks (DDPM's layout)

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
        # attention runs at the listed levels and in the middle block (the last level's channels)
        attended = {self.base_channels * self.channel_mult[lv] for lv in self.attention_levels}
        if self.mid_attention:
            attended.add(self.base_channels * self.channel_mult[-1])
        if self.attention_heads < 1 or any(c % self.attention_heads for c in attended):
            raise ConfigError(
                f"unet.attention_heads: {self.attention_heads} must divide the channels of every attention "
                f"layer {sorted(attended)}"
            )
        if self.time_activation not in ("silu", "gelu"):
            raise ConfigError(
                f"unet.time_activation: {self.time_activation!r} is not valid; choose silu or gelu"
            )
        if self.normalisation not in ("group", "none"):
            raise ConfigError(
                f"unet.normalisation: {self.normalisation!r} is not valid; choose group or none"
            )
        if self.dropout_kind not in ("element", "channel"):
            raise ConfigError(
                f"unet.dropout_kind: {self.dropout_kind!r} is not valid; choose element or channel"
            )


# Named architectures; ``in_channels``/``image_size`` are set from the data (see :func:`preset`).
PRESETS: dict[str, UNetConfig] = {
    # docs/science.md section 6 with the authors' network details (Utils/Unet.py of their repository:
    # GroupNorm(8), 4-head attention initialised as nn.MultiheadAttention, GELU in the step MLP, Dropout2d,
    # default init elsewhere); 25.64 M parameters at 3x32x32.
    "paper": UNetConfig(base_channels=64, channel_mult=(1, 2, 4, 4), num_res_blocks=2,
                        attention_levels=(1, 2), dropout=0.1, groups=8, attention_heads=4,
                        time_activation="gelu", dropout_kind="channel", zero_init=False,
                        attention_init="xavier"),
    # The default CPU run: same layout, narrower and shallower (0.28 M parameters, 0.13 GFLOP per
    # 1x32x32 image; 6000 steps of 32 images pass the quality gate, see config/README.md).
    "small": UNetConfig(base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                        attention_levels=(2,), dropout=0.1, groups=8),
    # The former default CPU run on 28x28 digits zero-padded to 32x32: the narrow full-resolution level of
    # `small` (its cost dominates), more width and two blocks at 16x16 and 8x8 where convolutions are 4-16x
    # cheaper, attention only at 8x8 (64 positions).  config/README.md gives its measured cost and sample
    # quality.
    "digits": UNetConfig(base_channels=16, channel_mult=(1, 2, 4), num_res_blocks=2,
                         attention_levels=(2,), dropout=0.0, groups=8),
    # The memorisation stage (docs/science.md, training time): the layout of `small` without dropout (dropout
    # is a regulariser and would shift the memorisation time), 0.28 M parameters; a series over n fits on a
    # CPU.  Its own name, so a change of the default CPU preset does not move the memorisation results.
    "narrow": UNetConfig(base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                         attention_levels=(2,), dropout=0.0, groups=8),
    # Tests and the tiny workflow: seconds on a CPU.
    "tiny": UNetConfig(base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                       attention_levels=(1,), dropout=0.0, groups=4),
    # `digits` without its layers that mix the whole image in one step: no GroupNorm (statistics over all
    # pixels) and no self-attention, like the convolutional networks the local score machines were tested on
    # (docs/science.md section 7; the ideal_models stage).  Locality is then learned, not imposed: the stacked
    # 3x3 convolutions across three levels still reach the whole 32x32 image (a unit input change at the
    # centre of a 64x64 image moves every output pixel).  0.89 M parameters against 0.99 M for `digits`.
    "local": UNetConfig(base_channels=16, channel_mult=(1, 2, 4), num_res_blocks=2,
                        attention_levels=(), dropout=0.0, groups=8, normalisation="none",
                        mid_attention=False),
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
    attention_heads: int | None = None
    time_activation: Literal["silu", "gelu"] | None = None
    dropout_kind: Literal["element", "channel"] | None = None
    zero_init: bool | None = None
    attention_init: Literal["default", "xavier"] | None = None
    normalisation: Literal["group", "none"] | None = None
    mid_attention: bool | None = None

    def resolve(self, *, in_channels: int, image_size: int) -> UNetConfig:
        """The architecture for images of ``in_channels`` x ``image_size`` x ``image_size``."""
        base = preset(self.preset, in_channels=in_channels, image_size=image_size)
        overrides = {
            name: getattr(self, name)
            for name in ("base_channels", "channel_mult", "num_res_blocks", "attention_levels", "dropout",
                         "groups", "attention_heads", "time_activation", "dropout_kind", "zero_init",
                         "attention_init", "normalisation", "mid_attention")
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

    def __init__(self, c_in: int, c_out: int, *, emb_dim: int, dropout: float, groups: int,
                 dropout_kind: str = "element", zero_init: bool = True, norm: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in) if norm else nn.Identity()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out) if norm else nn.Identity()
        self.dropout = nn.Dropout2d(dropout) if dropout_kind == "channel" else nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        if zero_init:
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
    """Multi-head spatial self-attention with a residual connection (DDPM's AttnBlock for ``heads = 1``).

    The 1x1 ``qkv`` and ``proj`` convolutions hold as many parameters as ``nn.MultiheadAttention``'s input
    and output projections, so the head count changes no parameter count.
    """

    def __init__(self, channels: int, *, groups: int, heads: int = 1, zero_init: bool = True,
                 init: str = "default") -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        if init == "xavier":
            # nn.MultiheadAttention._reset_parameters: Xavier-uniform over the whole (3C, C) input projection
            # (fan_in C, fan_out 3C), zero input and output biases; the output weight keeps the Linear (here
            # 1x1 Conv2d, same bound 1/sqrt(C)) default
            nn.init.xavier_uniform_(self.qkv.weight)
            nn.init.zeros_(self.qkv.bias)
            nn.init.zeros_(self.proj.bias)
        elif init != "default":
            raise ConfigError(f"unet.attention_init: {init!r} is not valid; choose 'default' or 'xavier'")
        if zero_init:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # (B, 3, heads, C/heads, HW) -> q, k, v of shape (B, heads, HW, C/heads)
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2)
        q, k, v = qkv.unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
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

        def res_block(c_in: int, c_out: int) -> ResBlock:
            return ResBlock(c_in, c_out, emb_dim=emb_dim, dropout=config.dropout, groups=g,
                            dropout_kind=config.dropout_kind, zero_init=config.zero_init,
                            norm=config.normalisation == "group")

        def attention(c: int) -> Attention:
            return Attention(c, groups=g, heads=config.attention_heads, zero_init=config.zero_init,
                             init=config.attention_init)

        def block(c_in: int, c_out: int, level: int) -> _Stage:
            attn = attention(c_out) if level in config.attention_levels else None
            return _Stage(res_block(c_in, c_out), attn)

        activation = nn.GELU() if config.time_activation == "gelu" else nn.SiLU()
        self.embed = nn.Sequential(nn.Linear(ch, emb_dim), activation, nn.Linear(emb_dim, emb_dim))
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

        self.mid1 = res_block(c, c)
        self.mid_attn = attention(c) if config.mid_attention else nn.Identity()
        self.mid2 = res_block(c, c)

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

        self.norm_out = nn.GroupNorm(g, c) if config.normalisation == "group" else nn.Identity()
        self.conv_out = nn.Conv2d(c, config.in_channels, 3, padding=1)
        if config.zero_init:
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

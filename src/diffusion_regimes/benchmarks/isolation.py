"""Cost of decoding in child processes (docs/security.md): an LSUN-sized LMDB export of WebP images.

The export holds ``count`` values (10 000; ``--quick`` 1 000), WebP-encoded 256 x 341 scenes like LSUN's
(a pool of 64 distinct smooth images with noise, repeated, so that building the export stays quick while
every value is decoded in full).  Three ways to read all of them to 64 x 64 are timed in the same run:

- in-process: the reader's decoding (``isolation.decode_image``) called directly, the baseline;
- isolated: ``isolation.lmdb_keys`` + ``isolation.lmdb_images``, batched ITEMS_PER_CHILD images per child,
  as the reader does;
- one child per image (measured on the first 20 and scaled): why the work is batched.

Both are run twice, alternating, and the best of each is kept; CPU time (this process plus its children,
from ``getrusage``) is printed beside the wall time, as it is less sensitive to a shared host.  The ratio
isolated / in-process is the isolation's overhead (the issue's bound: at most 1.2).
"""

from __future__ import annotations

import argparse
import io
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from diffusion_regimes.data import isolation
from diffusion_regimes.data.spec import DecoderLimits

SIDE = (341, 256)
POOL = 64


def _pool(rng: np.random.Generator) -> list[bytes]:
    from PIL import Image

    y, x = np.mgrid[0:SIDE[1], 0:SIDE[0]]
    out = []
    for _ in range(POOL):
        base = rng.uniform(0, 255, 3)
        slope = rng.uniform(-0.5, 0.5, (2, 3))
        pixels = base + x[..., None] * slope[0] + y[..., None] * slope[1] + rng.normal(0, 12, (*y.shape, 3))
        buf = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, "WEBP", quality=80)
        out.append(buf.getvalue())
    return out


def _export(folder: Path, count: int) -> list[bytes]:
    import lmdb

    pool = _pool(np.random.default_rng(0))
    keys = [f"{i:07d}".encode() for i in range(count)]
    env = lmdb.open(str(folder), map_size=count * max(map(len, pool)) * 2 + (1 << 24))
    with env.begin(write=True) as txn:
        for i, key in enumerate(keys):
            txn.put(key, pool[i % POOL])
    env.close()
    return keys


def _in_process(folder: Path, keys: list[bytes], resolution: int, limits: DecoderLimits) -> np.ndarray:
    import lmdb

    env = lmdb.open(str(folder), readonly=True, lock=False, readahead=False, meminit=False)
    with env.begin(buffers=True) as txn:
        out = np.stack([isolation.decode_image(bytes(txn.get(k)), resolution=resolution,
                                               max_pixels=limits.max_pixels) for k in keys])
    env.close()
    return out


def _cpu() -> float:
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds of this process and its children)."""
    wall, cpu = time.perf_counter(), _cpu()
    result = fn()
    return result, time.perf_counter() - wall, _cpu() - cpu


def run(args: argparse.Namespace) -> None:
    count = 1000 if args.quick else 10_000
    resolution, limits = 64, DecoderLimits()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "church_outdoor_train_lmdb"
        keys = _export(folder, count)
        size = (folder / "data.mdb").stat().st_size
        root = Path(tmp).resolve()
        print(f"LSUN-like export: {count} WebP values of {SIDE[0]}x{SIDE[1]}, data.mdb "
              f"{size / 2**20:.1f} MiB; "
              f"decoded to {resolution}x{resolution}; {isolation.ITEMS_PER_CHILD} images per child")
        def isolated() -> tuple[list[bytes], np.ndarray]:
            listed = isolation.lmdb_keys(folder, root, limits=limits)
            return listed, isolation.lmdb_images(folder, root, listed, resolution=resolution,
                                                 value_limit=1 << 26, limits=limits)

        runs: dict[str, list[tuple[float, float]]] = {"in-process": [], "isolated": []}
        for _ in range(2):
            direct, wall, cpu = _timed(lambda: _in_process(folder, keys, resolution, limits))
            runs["in-process"].append((wall, cpu))
            (listed, pixels), wall, cpu = _timed(isolated)  # type: ignore[misc]
            runs["isolated"].append((wall, cpu))
            assert listed == keys and pixels.tobytes() == direct.tobytes()  # type: ignore[union-attr]
        few = keys[:20]
        _, wall, cpu = _timed(lambda: [isolation.lmdb_images(folder, root, [k], resolution=resolution,
                                                             value_limit=1 << 26, limits=limits)
                                       for k in few])
        single = (wall / len(few) * count, cpu / len(few) * count)
    (base, base_cpu), (seconds, cpu) = (min(runs[k]) for k in ("in-process", "isolated"))
    print(f"  in-process decoding (baseline): {base:.2f} s wall, {base_cpu:.2f} s CPU ({count / base:,.0f} "
          f"images/s)")
    print(f"  isolated, batched: {seconds:.2f} s wall, {cpu:.2f} s CPU ({count / seconds:,.0f} images/s)")
    print(f"    isolated / in-process: wall {seconds / base:.3f} (overhead "
          f"{100 * (seconds / base - 1):+.1f} %), "
          f"CPU {cpu / base_cpu:.3f} (overhead {100 * (cpu / base_cpu - 1):+.1f} %)")
    print(f"  one child per image (20 measured, scaled to {count}): {single[0]:.1f} s wall, "
          f"{single[1]:.1f} s "
          f"CPU; / in-process wall {single[0] / base:.1f}")

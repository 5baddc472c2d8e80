"""Decoders that are not ours (LMDB pages, compressed image codecs) run in a child process with limits.

The project cannot validate an LMDB page or a WebP/JPEG/PNG bit stream itself, and the libraries that do
are written in C: a crafted file can crash them (SIGSEGV, SIGBUS, SIGABRT), loop, or make them allocate
without bound.  So the parent never calls them.  It starts ``python -m diffusion_regimes.data.isolation``,
hands it a batch of items (keys of one export, or image files of one class) in a request file, and reads
fixed-format frames back: one decoded image (3 r r bytes) or one key per frame, or one error.  The child
runs under

- an address-space limit (``RLIMIT_AS``): its size after start-up, plus ``memory_mb``, plus the size of the
  memory-mapped LMDB file;
- a CPU-time limit per item (``RLIMIT_CPU``, re-armed before each image: ``cpu_seconds``);
- a wall-clock limit per item, kept by the parent (``wall_seconds``; the child is killed when it passes).

A crash, an abort or a limit reached becomes a :class:`DataError` naming the item and the limit; the parent
keeps running.  The child is not a security sandbox against code execution (no seccomp, same user): it
contains crashes and exhaustion.  The frames it sends are checked for size and type before use, never
unpickled.  Items are batched (ITEMS_PER_CHILD per child) so that start-up costs little next to decoding;
``python -m diffusion_regimes.bench isolation`` measures the overhead.
"""

from __future__ import annotations

import io
import json
import math
import os
import resource
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from diffusion_regimes.data.checks import printable
from diffusion_regimes.data.files import descriptor_path, open_inside
from diffusion_regimes.data.spec import DecoderLimits
from diffusion_regimes.errors import DataError

__all__ = ["IMAGE_FORMATS", "centre_crop_resize", "decode_image", "lmdb_images", "lmdb_keys", "file_images"]

# Only these decoders are used: Pillow would otherwise pick any of its plugins from the file's first bytes
# (EPS, for one, runs Ghostscript).
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
ITEMS_PER_CHILD = 4096
# Start-up of the child (Python, NumPy, Pillow, lmdb) counts against the first item's wall-clock limit too.
STARTUP_SECONDS = 30.0
# LMDB keys are at most 511 bytes unless the library was rebuilt; one leaf entry takes at least 10 bytes.
MAX_KEY_BYTES = 511
MIN_ENTRY_BYTES = 10
KEYS_PER_CPU_BUDGET = 100_000
_FRAME = struct.Struct(">cI")
_MAX_ERROR_BYTES = 1 << 16


# ---------------------------------------------------------------- decoding (runs in the child)
RESIZES = ("bicubic", "bilinear", "bilinear_antialias")
"""``datasets.<name>.resize``: PIL's antialiased bicubic, bilinear interpolation without antialiasing (as
``torchvision.transforms.Resize`` on tensors before torchvision 0.17, whose default was
``antialias=False``: the authors' LSUN transform), and PIL's antialiased bilinear (what torchvision does on
PIL images, and on tensors with ``antialias=True``)."""


def bilinear_no_antialias(pixels: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 (h, w, 3) -> uint8 (r, r, 3) by bilinear interpolation without antialiasing.

    The sampling of ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
    antialias=False)``: output pixel ``j`` reads the source at ``(j + 1/2) s - 1/2`` (``s`` = the size
    ratio), clamped at the borders, between its two neighbours; downscaling 256 -> 64 thus averages two
    of every four source pixels per axis.  Rounded to the nearest integer (the tensor route keeps floats:
    at most 1/510 per pixel apart).
    """
    def weights(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(resolution) + 0.5) * (size / resolution) - 0.5, 0.0)
        low = np.minimum(np.floor(src).astype(np.int64), size - 1)
        high = np.minimum(low + 1, size - 1)
        return low, high, src - low

    x = pixels.astype(np.float64)
    (r0, r1, wr), (c0, c1, wc) = weights(x.shape[0]), weights(x.shape[1])
    rows = x[r0] * (1.0 - wr)[:, None, None] + x[r1] * wr[:, None, None]
    out = rows[:, c0] * (1.0 - wc)[None, :, None] + rows[:, c1] * wc[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def centre_crop_resize(image: Any, resolution: int, resize: str = "bicubic") -> np.ndarray:
    """PIL image -> uint8 (3, r, r): centre crop to the short side, then resize with ``resize``
    (:data:`RESIZES`; docs/science.md section 4)."""
    from PIL import Image

    image = image.convert("RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if resize == "bilinear":
        return bilinear_no_antialias(np.asarray(image, dtype=np.uint8), resolution).transpose(2, 0, 1)
    filters = {"bicubic": Image.Resampling.BICUBIC, "bilinear_antialias": Image.Resampling.BILINEAR}
    if resize not in filters:
        raise DataError(f"resize {resize!r} is not valid; choose one of {list(RESIZES)}")
    image = image.resize((resolution, resolution), filters[resize])
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def decode_image(source: BinaryIO | bytes, *, resolution: int, max_pixels: int,
                 resize: str = "bicubic") -> np.ndarray:
    """Decode one image file or blob (PNG, JPEG, WebP or BMP only) -> uint8 (3, r, r).

    The pixel count is read from the header and refused above ``max_pixels`` before any decoding.
    """
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow's own check (2x this raises at open) stays behind ours
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise DataError(f"image above the {max_pixels}-pixel limit ({exc}); refused before "
                        f"decoding") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise DataError(f"image of {width}x{height} = {width * height} pixels, above the "
                            f"{max_pixels}-pixel limit (a decompression bomb, or not a dataset image; "
                            f"`decoder_limits.max_pixels`); refused before decoding")
        return centre_crop_resize(image, resolution, resize)


def _send(out: BinaryIO, tag: bytes, payload: bytes) -> None:
    out.write(_FRAME.pack(tag, len(payload)) + payload)


def _arm_cpu(seconds: int) -> None:
    """Let the child use ``seconds`` more CPU seconds from now (SIGXCPU, which ends it, after that)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + seconds
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = soft if hard == resource.RLIM_INFINITY else min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _limit_memory(extra: int) -> None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except OSError:  # no /proc: the address space is not measured, so it is not limited either
        return
    limit = pages * os.sysconf("SC_PAGE_SIZE") + extra
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]  # a limit inherited from the job is kept if lower
    limit = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _open_lmdb(export: Path, root: Path) -> tuple[Any, BinaryIO, int]:
    """The LMDB environment of ``export/data.mdb``, opened through the descriptor open_inside checked."""
    import lmdb

    fh = open_inside(export / "data.mdb", root)
    path = descriptor_path(fh.fileno()) and f"/proc/self/fd/{fh.fileno()}" or f"/dev/fd/{fh.fileno()}"
    env = lmdb.open(path, subdir=False, readonly=True, lock=False, readahead=False, meminit=False)
    return env, fh, os.fstat(fh.fileno()).st_size


def _child_items(request: dict[str, Any]) -> Iterator[tuple[bytes, bytes]]:
    """(tag, payload) of each result, in item order; runs inside the limits set by :func:`_child_main`."""
    limits = DecoderLimits(**request["limits"])
    root = Path(request["root"])
    task = request["task"]
    if task == "files":
        for item in request["items"]:
            _arm_cpu(limits.cpu_seconds)
            with open_inside(Path(os.fsdecode(bytes.fromhex(item))), root) as fh:
                image = decode_image(fh, resolution=request["resolution"], max_pixels=limits.max_pixels,
                                     resize=request.get("resize", "bicubic"))
            yield b"R", image.tobytes()
        return
    env, _fh, size = _open_lmdb(Path(request["export"]), root)
    if task == "lmdb_keys":
        bound = max(16, size // MIN_ENTRY_BYTES)
        with env.begin() as txn:
            for count, key in enumerate(txn.cursor().iternext(keys=True, values=False)):
                if count % KEYS_PER_CPU_BUDGET == 0:
                    _arm_cpu(limits.cpu_seconds)
                if count >= bound:
                    raise DataError(f"more keys than a {size}-byte file can hold ({bound}); the pages loop")
                if len(key) > MAX_KEY_BYTES:
                    raise DataError(f"a key of {len(key)} bytes (LMDB keys have at most {MAX_KEY_BYTES})")
                yield b"K", bytes(key)
        return
    value_limit = min(request["value_limit"], size)
    with env.begin(buffers=True) as txn:
        for item in request["items"]:
            _arm_cpu(limits.cpu_seconds)
            value = txn.get(bytes.fromhex(item))  # a view into the memory map: sized before any copy
            if value is None:
                raise DataError("the key has no value")
            if len(value) > value_limit:
                raise DataError(f"value of {len(value)} bytes, above the {value_limit}-byte limit for one "
                                f"encoded image; refused")
            image = decode_image(bytes(value), resolution=request["resolution"], max_pixels=limits.max_pixels,
                                 resize=request.get("resize", "bicubic"))
            yield b"R", image.tobytes()


def _child_main() -> int:
    """Entry point of the child: read the request from stdin, answer frames on stdout."""
    request = json.loads(sys.stdin.buffer.read())
    import lmdb  # noqa: F401 - imported before the address space is measured and limited
    from PIL import Image, JpegImagePlugin, PngImagePlugin, WebPImagePlugin  # noqa: F401

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)  # an ignored signal would stay ignored across exec
    _limit_memory((request["limits"]["memory_mb"] << 20) + int(request.get("mapped", 0)))
    out = sys.stdout.buffer
    try:
        for tag, payload in _child_items(request):
            _send(out, tag, payload)
    except MemoryError:
        _send(out, b"E", json.dumps({"kind": "memory", "message": "out of memory"}).encode())
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which names the item
        kind = "data" if isinstance(exc, DataError) else type(exc).__name__
        _send(out, b"E", json.dumps({"kind": kind, "message": str(exc)[:4000]}).encode())
    _send(out, b"D", b"")
    out.flush()
    return 0


# ---------------------------------------------------------------- the parent
def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # one thread each: thread stacks and per-thread heaps would count against the address-space limit
    env.update({k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    # glibc: keep image-sized buffers (a 256 x 341 RGB image is 262 kB) on the heap instead of mapping and
    # unmapping each one; a fresh process otherwise pays ~200 page faults per image (+40 % CPU, measured
    # with the isolation benchmark).  Other C libraries ignore these.
    env.update({"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)})
    return env


def _failure(where: str, kind: str, message: str, limits: DecoderLimits) -> DataError:
    if kind == "memory":
        return DataError(f"{where}: decoding needs more than the {limits.memory_mb} MB memory limit "
                         f"(`datasets.<name>.decoder_limits.memory_mb`); a decompression bomb, or an image "
                         f"larger than the limit allows")
    if kind == "data":
        return DataError(f"{where}: {printable(message, limit=400, quote=False)}")
    return DataError(f"{where}: cannot decode image ({kind}: {printable(message, limit=300, quote=False)}); "
                     f"expected one of {', '.join(IMAGE_FORMATS)} (or an LMDB export); the file is corrupt "
                     f"or not what it is named")


def _signal_failure(where: str, signum: int, limits: DecoderLimits) -> DataError:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    if signum == signal.SIGXCPU:
        return DataError(f"{where}: decoding passed the {limits.cpu_seconds}-second CPU limit per item "
                         f"(`datasets.<name>.decoder_limits.cpu_seconds`); a decompression bomb, or raise "
                         f"the limit for very large images")
    return DataError(f"{where}: the decoder crashed ({name}) in its child process (memory limit "
                     f"{limits.memory_mb} MB, CPU limit {limits.cpu_seconds} s per item); the file is "
                     f"corrupt or crafted; the pipeline itself is unaffected")


class _Frames:
    """Frames read from the child's stdout, each within ``wall`` seconds of the previous one."""

    def __init__(self, proc: subprocess.Popen, *, wall: float) -> None:
        self.proc, self.wall, self.buffer = proc, wall, bytearray()
        self.selector = selectors.DefaultSelector()
        self.selector.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        self.deadline = time.monotonic() + wall + STARTUP_SECONDS

    def _fill(self, size: int) -> bool:
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while len(self.buffer) < size:
            left = self.deadline - time.monotonic()
            if left <= 0 or not self.selector.select(timeout=left):
                raise TimeoutError
            chunk = os.read(fd, max(1 << 16, size - len(self.buffer)))
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def next(self, sizes: dict[bytes, int]) -> tuple[bytes, bytes] | None:
        """The next (tag, payload), None at end of stream; a frame of an unexpected tag or size is an
        error of the child (raised as ValueError)."""
        if not self._fill(_FRAME.size):
            return None
        tag, length = _FRAME.unpack_from(self.buffer)
        if tag not in sizes or length > sizes[tag] or (tag == b"R" and length != sizes[tag]):
            raise ValueError(f"frame {tag!r} of {length} bytes")
        if not self._fill(_FRAME.size + length):
            return None
        payload = bytes(self.buffer[_FRAME.size:_FRAME.size + length])
        del self.buffer[:_FRAME.size + length]
        self.deadline = time.monotonic() + self.wall
        return tag, payload


def _run(request: dict[str, Any], names: Sequence[str], *, limits: DecoderLimits,
         sizes: dict[bytes, int]) -> list[bytes]:
    """Run one child on ``request``; the payloads of its result frames, one per item (``names[i]`` says
    which item, for messages).  Any failure is a DataError naming the item it happened on."""
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stderr:
        stdin.write(json.dumps(request).encode())
        stdin.seek(0)
        proc = subprocess.Popen([sys.executable, "-m", "diffusion_regimes.data.isolation"], stdin=stdin,
                                stdout=subprocess.PIPE, stderr=stderr, env=_child_env(), close_fds=True)
        results: list[bytes] = []
        failure: DataError | None = None
        frames = _Frames(proc, wall=limits.wall_seconds)
        try:
            while True:
                frame = frames.next({**sizes, b"E": _MAX_ERROR_BYTES, b"D": 0})
                if frame is None:
                    break
                tag, payload = frame
                if tag == b"D":
                    break
                where = names[min(len(results), len(names) - 1)]
                if tag == b"E":
                    report = json.loads(payload)
                    if not isinstance(report, dict):
                        raise ValueError("an error frame that is not a JSON object")
                    failure = _failure(where, str(report.get("kind")), str(report.get("message")), limits)
                    break
                results.append(payload)
        except TimeoutError:
            failure = DataError(f"{names[min(len(results), len(names) - 1)]}: decoding passed the "
                                f"{limits.wall_seconds}-second wall-clock limit per item (`datasets.<name>."
                                f"decoder_limits.wall_seconds`); a decoder that hangs or loops, or a very "
                                f"slow file system")
        except ValueError as exc:
            failure = DataError(f"{names[0]}: the decoder's child process answered out of protocol ({exc})")
        finally:
            frames.selector.close()
            if proc.poll() is None and failure is not None:
                proc.kill()
            code = proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
        if failure is not None:
            raise failure
        if code < 0:
            raise _signal_failure(names[min(len(results), len(names) - 1)], -code, limits)
        if code != 0:
            stderr.seek(0)
            tail = stderr.read()[-1500:].decode("utf-8", "replace")
            raise DataError(f"{names[0]}: the decoder's child process failed (exit {code}): "
                            f"{printable(tail, limit=1500, quote=False)}")
    return results


def _limits_dict(limits: DecoderLimits) -> dict[str, Any]:
    return {k: getattr(limits, k) for k in ("memory_mb", "cpu_seconds", "wall_seconds", "max_pixels")}


def _images(request: dict[str, Any], items: list[str], names: list[str], *, resolution: int,
            limits: DecoderLimits) -> np.ndarray:
    side = 3 * resolution * resolution
    out = np.zeros((len(items), 3, resolution, resolution), np.uint8)
    for start in range(0, len(items), ITEMS_PER_CHILD):
        chunk = slice(start, start + ITEMS_PER_CHILD)
        payloads = _run({**request, "items": items[chunk], "resolution": resolution}, names[chunk],
                        limits=limits, sizes={b"R": side})
        if len(payloads) != len(items[chunk]):
            raise DataError(f"{names[chunk][len(payloads)]}: the decoder's child process stopped early")
        out[chunk] = np.frombuffer(b"".join(payloads), np.uint8).reshape(-1, 3, resolution, resolution)
    return out


def file_images(files: Sequence[Path], root: Path, *, resolution: int, limits: DecoderLimits,
                resize: str = "bicubic") -> np.ndarray:
    """Decode image ``files`` (each opened inside ``root``) -> uint8 (k, 3, r, r), in a child."""
    items = [os.fsencode(f).hex() for f in files]
    names = [printable(str(f), quote=False) for f in files]
    return _images({"task": "files", "root": str(root), "limits": _limits_dict(limits), "resize": resize},
                   items, names, resolution=resolution, limits=limits)


def lmdb_keys(export: Path, root: Path, *, limits: DecoderLimits) -> list[bytes]:
    """Every key of the LMDB export folder ``export`` (its ``data.mdb`` inside ``root``), in a child."""
    size = (export / "data.mdb").stat().st_size
    return _run({"task": "lmdb_keys", "export": str(export), "root": str(root), "mapped": size,
                 "limits": _limits_dict(limits)}, [printable(str(export), quote=False)], limits=limits,
                sizes={b"K": MAX_KEY_BYTES})


def lmdb_images(export: Path, root: Path, keys: Sequence[bytes], *, resolution: int, value_limit: int,
                limits: DecoderLimits, resize: str = "bicubic") -> np.ndarray:
    """Decode the values of ``keys`` in the LMDB export ``export`` -> uint8 (k, 3, r, r), in a child."""
    size = (export / "data.mdb").stat().st_size
    names = [f"{printable(str(export), quote=False)}[{printable(k.decode('utf-8', 'replace'), quote=False)}]"
             for k in keys]
    request = {"task": "lmdb_images", "export": str(export), "root": str(root), "mapped": size,
               "value_limit": value_limit, "limits": _limits_dict(limits), "resize": resize}
    return _images(request, [k.hex() for k in keys], names, resolution=resolution, limits=limits)


if __name__ == "__main__":
    raise SystemExit(_child_main())

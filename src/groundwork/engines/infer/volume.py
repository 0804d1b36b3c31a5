"""Volumes on disk, read and written a region at a time.

Formats, by path:

==================  ===========================================  ======================================
path                read                                         written
==================  ===========================================  ======================================
``x.zarr`` (dir)    zarr v3 (or v2) array, chunk by chunk         zarr v3, one zarr chunk per output chunk
``x.npy``           memory-mapped                                memory-mapped
``x.nii[.gz]``      nibabel (``dataobj`` slices: a gzip file is  written as ``.npy`` while running, then
                    read forwards, an uncompressed one mapped)   converted to NIfTI at the end
``x.tif[f]``        tifffile: memory-mapped when uncompressed,   uncompressed, memory-mapped
                    else through its zarr view (tiled)
==================  ===========================================  ======================================

Layout: channels first, with an optional batch of volumes: an array with as many
axes as the window is one volume of one channel, one more axis is ``(C, *spatial)``,
two more ``(N, C, *spatial)``. NIfTI keeps its own order: ``(X, Y, Z)`` or
``(X, Y, Z, C)``. Every :class:`Volume` shows the array as ``(N, C, *spatial)``.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.errors import InvalidInput

FORMATS = ("zarr", "npy", "nifti", "tiff")
#: A memory map is closed and opened again after about this many bytes of its pages were touched.
REMAP_BYTES = 8 * 1024 * 1024
PAGE = 4096


def format_of(path: Path) -> str:
    """The format a path names, by its suffix (a directory holding ``zarr.json``/``.zarray`` is zarr)."""
    name = path.name.lower()
    if name.endswith(".zarr") or (path.is_dir() and ((path / "zarr.json").exists() or (path / ".zarray").exists())):
        return "zarr"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith((".tif", ".tiff")):
        return "tiff"
    raise InvalidInput(
        f"cannot tell the format of {str(path)!r} from its name",
        hint="use a .zarr folder, a .npy file, a .nii/.nii.gz file or a .tif/.tiff file",
    )


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InvalidInput(
            f"reading and writing this format needs {module}, which is not installed",
            hint="pip install 'groundwork[volumes]'",
        ) from None


@dataclass
class Layout:
    """How a stored array maps to ``(N, C, *spatial)``: leading axes kept (0, 1 or 2), channels last (NIfTI)."""

    lead: int
    channels_last: bool = False
    has_channel_axis: bool = True

    def view_shape(self, shape: Sequence[int], spatial: int) -> tuple[int, ...]:
        shape = tuple(int(s) for s in shape)
        if self.channels_last:
            sp, rest = shape[:spatial], shape[spatial:]
            return (1, int(np.prod(rest)) if rest else 1, *sp)
        if self.lead == 0:
            return (1, 1, *shape)
        if self.lead == 1:
            return (1, *shape)
        return shape

    def stored_shape(self, volumes: int, channels: int, size: Sequence[int]) -> tuple[int, ...]:
        if self.channels_last:
            return (*size, channels) if self.has_channel_axis else tuple(size)
        if self.lead == 0:
            return tuple(size)
        if self.lead == 1:
            return (channels, *size)
        return (volumes, channels, *size)

    def key(self, n: int, box: Sequence[slice]) -> tuple[Any, ...]:
        """The stored index of volume ``n``, every channel, region ``box``."""
        if self.channels_last:
            return (*box, slice(None)) if self.has_channel_axis else tuple(box)
        if self.lead == 0:
            return tuple(box)
        if self.lead == 1:
            return (slice(None), *box)
        return (n, slice(None), *box)

    def to_view(self, block: np.ndarray, spatial: int) -> np.ndarray:
        """A stored block as ``(C, *spatial)``."""
        if self.channels_last:
            return np.moveaxis(block, -1, 0) if block.ndim > spatial else block[None]
        if self.lead == 0:
            return block[None]
        return block

    def from_view(self, block: np.ndarray) -> np.ndarray:
        """A ``(C, *spatial)`` block as stored."""
        if self.channels_last:
            return np.moveaxis(block, 0, -1) if self.has_channel_axis else np.asarray(block[0])
        if self.lead == 0:
            return np.asarray(block[0])
        return block


def layout_for(ndim: int, spatial: int, fmt: str) -> Layout:
    if fmt == "nifti":
        if ndim not in (spatial, spatial + 1):
            raise InvalidInput(f"a NIfTI volume for a {spatial}-axis window has {spatial} or {spatial + 1} axes, not {ndim}")
        return Layout(lead=0, channels_last=True, has_channel_axis=ndim > spatial)
    lead = ndim - spatial
    if lead not in (0, 1, 2):
        raise InvalidInput(
            f"the volume has {ndim} axes; a {spatial}-axis window needs {spatial} (one channel), "
            f"{spatial + 1} (channels first) or {spatial + 2} (a batch of volumes, channels first)",
            hint="check --window: one size per spatial axis",
        )
    return Layout(lead=lead)


class Volume:
    """A stored array seen as ``(N, C, *spatial)``; reads and writes regions of one volume."""

    def __init__(self, path: Path, array: Any, layout: Layout, spatial: int, fmt: str, handle: Any = None) -> None:
        self.path = path
        self.array = array
        self.layout = layout
        self.spatial = spatial
        self.format = fmt
        self._handle = handle
        self.shape = layout.view_shape(array.shape, spatial)
        self.dtype = np.dtype(array.dtype)

    @property
    def volumes(self) -> int:
        return self.shape[0]

    @property
    def channels(self) -> int:
        return self.shape[1]

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(self.shape[2:])

    def read(self, n: int, box: Sequence[slice]) -> np.ndarray:
        """Volume ``n``, every channel, region ``box``: an in-memory ``(C, *box)`` array."""
        try:
            block = np.asarray(self.array[self.layout.key(n, box)])
        except (ValueError, OSError, RuntimeError, EOFError, KeyError, TypeError) as exc:
            where = ", ".join(f"{b.start}:{b.stop}" for b in box)
            raise InvalidInput(
                f"cannot read {self.path} at [{where}] (volume {n}): {type(exc).__name__}: {_first_line(exc)}",
                hint="a chunk of the input is damaged or missing; output chunks finished so far are kept",
            ) from None
        return self.layout.to_view(block, self.spatial)

    def write(self, n: int, box: Sequence[slice], block: np.ndarray) -> None:
        """Store a ``(C, *box)`` block at volume ``n``, region ``box``."""
        self.array[self.layout.key(n, box)] = self.layout.from_view(block)

    def flush(self) -> None:
        flush = getattr(self.array, "flush", None)
        if callable(flush):
            flush()

    def close(self) -> None:
        self.flush()
        close = getattr(self._handle, "close", None)
        if callable(close):
            close()
        self.array = None


def _full_key(key: Any, shape: Sequence[int]) -> tuple[Any, ...]:
    """An index as one entry per axis (ints and slices only; what :class:`Volume` passes)."""
    items = key if isinstance(key, tuple) else (key,)
    return (*items, *(slice(None),) * (len(shape) - len(items)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class Mapped:
    """A memory-mapped array that is unmapped and mapped again every :data:`REMAP_BYTES` touched.

    Pages of a map that were read or written count in the process's resident memory
    until the map is closed (they stay in the page cache after). Reading a 4 GiB volume
    through one map would grow the process by 4 GiB; through this one, by at most
    :data:`REMAP_BYTES`.
    """

    def __init__(self, opener: Callable[[], np.ndarray]) -> None:
        self._opener = opener
        self._map: np.ndarray | None = opener()
        self.shape = tuple(self._map.shape)
        self.dtype = self._map.dtype
        self._touched = 0

    def _array(self) -> np.ndarray:
        if self._map is None:
            self._map = self._opener()
        return self._map

    def _pieces(self, key: Any) -> tuple[list[tuple[tuple[Any, ...], slice, int]], int]:
        """``key`` cut along its outermost ranged axis into pieces touching at most :data:`REMAP_BYTES`
        of pages each: ``(piece, where it goes along that axis of the result, pages it touches)``,
        and that axis's place in the result (0 when not cut)."""
        full = _full_key(key, self.shape)
        extents = [len(range(*k.indices(n))) if isinstance(k, slice) else 1
                   for k, n in zip(full, self.shape, strict=True)]
        row_bytes = (-(-extents[-1] * self.dtype.itemsize // PAGE) + 1) * PAGE  # a row may straddle pages
        per_row_of_axis = [math.prod(extents[i + 1:-1]) * row_bytes for i in range(len(extents))]
        axis = next((i for i, k in enumerate(full[:-1])
                     if isinstance(k, slice) and extents[i] > 1 and k.step in (None, 1)), None)
        touched = math.prod(extents[:-1]) * row_bytes
        if axis is None or touched <= REMAP_BYTES:
            return [(full, slice(None), touched)], 0
        step = max(1, REMAP_BYTES // per_row_of_axis[axis])
        start, stop, _ = full[axis].indices(self.shape[axis])
        out_axis = sum(1 for k in full[:axis] if isinstance(k, slice))
        pieces = []
        for i in range(start, stop, step):
            j = min(stop, i + step)
            pieces.append(((*full[:axis], slice(i, j), *full[axis + 1:]), slice(i - start, j - start),
                           (j - i) * per_row_of_axis[axis]))
        return pieces, out_axis

    def _touch(self, nbytes: int) -> None:
        self._touched += nbytes
        if self._touched >= REMAP_BYTES:
            self.flush()
            self._map = None  # unmapped when the last reference goes (we hand out copies only)
            self._touched = 0

    def __getitem__(self, key: Any) -> np.ndarray:
        pieces, axis = self._pieces(key)
        parts = []
        for piece, _, touched in pieces:
            parts.append(np.array(self._array()[piece]))
            self._touch(touched)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=axis)

    def __setitem__(self, key: Any, value: np.ndarray) -> None:
        pieces, axis = self._pieces(key)
        value = np.asarray(value)
        for piece, where, touched in pieces:
            self._array()[piece] = value if len(pieces) == 1 else value[(slice(None),) * axis + (where,)]
            self._touch(touched)

    def flush(self) -> None:
        if self._map is not None and hasattr(self._map, "flush"):
            self._map.flush()


# --- reading ------------------------------------------------------------------------------------
def open_input(path: str | os.PathLike[str], spatial: int) -> Volume:
    """The volume at ``path`` for reading, or one clear error."""
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"input {str(p)!r} does not exist")
    fmt = format_of(p)
    try:
        array, handle = _open_array(p, fmt)
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"cannot open input {str(p)!r} as {fmt}: {type(exc).__name__}: {_first_line(exc)}") from None
    layout = layout_for(len(array.shape), spatial, fmt)
    return Volume(p, array, layout, spatial, fmt, handle)


def _open_array(p: Path, fmt: str) -> tuple[Any, Any]:
    if fmt == "zarr":
        zarr = _need("zarr")
        return zarr.open_array(str(p), mode="r"), None
    if fmt == "npy":
        return Mapped(lambda: np.load(p, mmap_mode="r", allow_pickle=False)), None
    if fmt == "nifti":
        nib = _need("nibabel")
        image = nib.load(str(p), mmap=False)  # slices are read from the file, never mapped
        return image.dataobj, None
    tifffile = _need("tifffile")
    try:
        return Mapped(lambda: tifffile.memmap(str(p), mode="r")), None
    except ValueError:  # compressed or tiled: read through tifffile's zarr view
        zarr = _need("zarr")
        store = tifffile.imread(str(p), aszarr=True)
        return zarr.open_array(store, mode="r"), store


def nifti_affine(path: Path) -> np.ndarray | None:
    """The input's affine, so a NIfTI output lines up with a NIfTI input."""
    if format_of(path) != "nifti":
        return None
    nib = _need("nibabel")
    return np.asarray(nib.load(str(path)).affine)


# --- writing ------------------------------------------------------------------------------------
def create_output(
    path: Path,
    fmt: str,
    layout: Layout,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    chunks: Sequence[int],
    spatial: int,
) -> Volume:
    """A new array at ``path`` (inside the partial folder) of view shape ``shape`` (N, C, *spatial)."""
    volumes, channels, size = shape[0], shape[1], shape[2:]
    stored = layout.stored_shape(volumes, channels, size)
    if fmt == "zarr":
        zarr = _need("zarr")
        lead_chunks = {0: (), 1: (channels,), 2: (1, channels)}[layout.lead]
        array = zarr.create_array(
            store=str(path), shape=stored, chunks=(*lead_chunks, *chunks), dtype=dtype, fill_value=0,
            zarr_format=3, overwrite=False, write_data=True,
        )
        return Volume(path, array, layout, spatial, fmt)
    if fmt == "tiff":
        tifffile = _need("tifffile")
        tifffile.memmap(str(path), shape=stored, dtype=dtype, photometric="minisblack")
        return reopen_output(path, fmt, layout, spatial)
    # npy, and the .npy a NIfTI output is written as until the end
    np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=stored)
    return reopen_output(path, fmt, layout, spatial)


def reopen_output(path: Path, fmt: str, layout: Layout, spatial: int) -> Volume:
    """An output being written, opened again to resume."""
    if fmt == "zarr":
        zarr = _need("zarr")
        return Volume(path, zarr.open_array(str(path), mode="r+"), layout, spatial, fmt)
    if fmt == "tiff":
        tifffile = _need("tifffile")
        return Volume(path, Mapped(lambda: tifffile.memmap(str(path), mode="r+")), layout, spatial, fmt)
    return Volume(path, Mapped(lambda: np.load(path, mmap_mode="r+", allow_pickle=False)), layout, spatial, "npy")


def working_name(fmt: str) -> str:
    """The name the output has inside the partial folder while it is written."""
    return {"zarr": "data.zarr", "npy": "data.npy", "tiff": "data.tif", "nifti": "data.npy"}[fmt]


def publish(work: Path, fmt: str, target: Path, affine: np.ndarray | None) -> None:
    """Move a finished output from the partial folder to ``target`` (converting to NIfTI where asked)."""
    if fmt != "nifti":
        os.replace(work, target)
        return
    nib = _need("nibabel")
    data = np.load(work, mmap_mode="r", allow_pickle=False)
    tmp = target.with_name(f".tmp-{target.name}")  # nibabel picks the format from the suffix
    image = nib.Nifti1Image(data, affine if affine is not None else np.eye(4))
    image.set_data_dtype(data.dtype)
    try:
        image.to_filename(str(tmp))
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()

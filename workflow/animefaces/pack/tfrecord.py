"""Multi-resolution TFRecords in the layout of StyleGAN 1/2 ``dataset_tool.py create_from_images``, written
without TensorFlow.

Layout (one directory per dataset, as StyleGAN's loader expects)::

    <dir>/<name>-r02.tfrecords ... <dir>/<name>-rNN.tfrecords   one file per resolution 4x4 ... SxS (NN = log2 S)
    <dir>/<name>-rxx.labels                                      optional: one-hot float32 .npy, rows in record order

Every record is a serialised ``tf.train.Example`` with two features: ``shape`` (Int64List ``[C, H, W]``) and
``data`` (BytesList with one value: the uint8 CHW pixels). Record ``i`` of every file is the same image.

Lower resolutions (what dataset_tool does): it converts the full-resolution image to float32 once and repeatedly
box-averages it, ``x = (x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2]) * 0.25``, storing
each level as ``np.rint(x).clip(0, 255).astype(uint8)``. The cascade continues from the *unrounded* float level, so
level k is the exact mean of each ``2^k x 2^k`` block of the original pixels, rounded half to even once (float32
holds these means exactly up to S = 1024); it is not the average of the already-rounded level above. We compute
the same values with integer block sums (:func:`pyramid`).

Framing (TFRecord): ``uint64 length | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)``, all
little-endian, with ``masked(c) = ((c >> 15 | c << 17) + 0xa282ead8) mod 2^32``. Protobuf: hand-encoded varints
and length-delimited fields (Example.features = 1; Features.feature = 1 is a map<string, Feature>, i.e. repeated
entries {key = 1, value = 2}; Feature.bytes_list = 1, float_list = 2, int64_list = 3; each list's values = 1,
Int64List and FloatList packed).
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import google_crc32c
import numpy as np

from ..atomic import make_temp_dir
from .formats import PackJob, PackWritten
from .source import PackError, batched_chw, first_size, fsync_path, iter_arrays
from .zipds import want_labels

MASK_DELTA = 0xA282EAD8
U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF
_LEN = struct.Struct("<Q")
_CRC = struct.Struct("<I")
WRITE_BUFFER = 1 << 20

# ----------------------------------------------------------------------------------------------- framing / CRC


def mask_crc(crc: int) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant (so CRCs of CRCs stay well-behaved)."""
    return ((((crc >> 15) | (crc << 17)) & U32) + MASK_DELTA) & U32


def masked_crc32c(pieces: Iterable[bytes | memoryview]) -> int:
    crc = 0
    for piece in pieces:
        crc = google_crc32c.extend(crc, piece)
    return mask_crc(crc)


def frame_record(pieces: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """The TFRecord framing around a record given as pieces (not joined: the pixel bytes are not copied)."""
    length = _LEN.pack(sum(len(p) for p in pieces))
    return [length, _CRC.pack(masked_crc32c([length])), *pieces, _CRC.pack(masked_crc32c(pieces))]


def read_records(path: str | os.PathLike[str], verify: bool = True) -> Iterator[bytes]:
    """Records of a TFRecord file, checking both CRCs of every record (raises PackError naming the offset)."""
    with open(path, "rb") as fh:
        offset = 0
        while True:
            head = fh.read(12)
            if not head:
                return
            if len(head) < 12:
                raise PackError(f"{path}: truncated record header at byte {offset}")
            (length,) = _LEN.unpack_from(head, 0)
            (len_crc,) = _CRC.unpack_from(head, 8)
            if verify and mask_crc(google_crc32c.value(head[:8])) != len_crc:
                raise PackError(f"{path}: length CRC mismatch at byte {offset}")
            body = fh.read(length + 4)
            if len(body) < length + 4:
                raise PackError(f"{path}: truncated record at byte {offset}")
            data = body[:length]
            (data_crc,) = _CRC.unpack_from(body, length)
            if verify and mask_crc(google_crc32c.value(data)) != data_crc:
                raise PackError(f"{path}: data CRC mismatch in the record at byte {offset}")
            offset += 12 + length + 4
            yield data


# ----------------------------------------------------------------------------------------------- protobuf


def varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative int64 values use their 64-bit two's complement (10 bytes)."""
    value &= U64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def _delimited(field: int, pieces: list[bytes | memoryview]) -> list[bytes | memoryview]:
    return [_key(field, 2), varint(sum(len(p) for p in pieces)), *pieces]


def int64_feature(values: Iterable[int]) -> list[bytes]:
    """Feature{int64_list: Int64List{value: packed}} as pieces."""
    packed = b"".join(varint(int(v)) for v in values)
    return _delimited(3, _delimited(1, [packed]))


def bytes_feature(values: Iterable[bytes | memoryview]) -> list[bytes | memoryview]:
    """Feature{bytes_list: BytesList{value: [...]}} as pieces."""
    inner: list[bytes | memoryview] = []
    for v in values:
        inner += _delimited(1, [v])
    return _delimited(1, inner)


def float_feature(values: Iterable[float]) -> list[bytes]:
    """Feature{float_list: FloatList{value: packed float32}} as pieces."""
    packed = np.asarray(list(values), dtype="<f4").tobytes()
    return _delimited(2, _delimited(1, [packed]))


def encode_example(features: dict[str, list[bytes | memoryview]]) -> list[bytes | memoryview]:
    """Example{features: Features{feature: map}} from {name: encoded Feature pieces}; keys in sorted order."""
    entries: list[bytes | memoryview] = []
    for name in sorted(features):
        entry = _delimited(1, [name.encode("utf-8")]) + _delimited(2, features[name])
        entries += _delimited(1, entry)
    return _delimited(1, entries)


def image_example(chw: np.ndarray) -> list[bytes | memoryview]:
    """The StyleGAN record of one C x H x W uint8 image: {'shape': [C, H, W], 'data': raw bytes}."""
    if chw.dtype != np.uint8 or chw.ndim != 3:
        raise PackError(f"image_example needs a C x H x W uint8 array, got {chw.dtype} {chw.shape}")
    data = chw.tobytes()  # C order; google_crc32c needs bytes, not a (writable) memoryview
    return encode_example({"shape": int64_feature(chw.shape), "data": bytes_feature([data])})


class ImageRecordWriter:
    """Appends framed image records of one shape to a binary file. For a fixed shape every record has the same
    length and the same protobuf bytes before and after the pixels, so those (and their CRC) are encoded once;
    the bytes written are exactly ``frame_record(image_example(img))``."""

    def __init__(self, fh, shape: tuple[int, int, int]) -> None:
        self.fh = fh
        self.shape = tuple(int(v) for v in shape)
        placeholder = bytes(int(np.prod(self.shape)))
        pieces = encode_example({"shape": int64_feature(self.shape), "data": bytes_feature([placeholder])})
        at = next(i for i, p in enumerate(pieces) if p is placeholder)
        self.prefix = b"".join(pieces[:at])
        self.suffix = b"".join(pieces[at + 1 :])
        length = _LEN.pack(len(self.prefix) + len(placeholder) + len(self.suffix))
        self.head = length + _CRC.pack(masked_crc32c([length])) + self.prefix
        self.prefix_crc = google_crc32c.value(self.prefix)

    def write(self, chw: np.ndarray) -> None:
        if chw.shape != self.shape or chw.dtype != np.uint8:
            raise PackError(f"record image is {chw.dtype} {chw.shape}, this file holds uint8 {self.shape}")
        data = chw.tobytes()
        crc = google_crc32c.extend(google_crc32c.extend(self.prefix_crc, data), self.suffix)
        self.fh.write(self.head)
        self.fh.write(data)
        self.fh.write(self.suffix + _CRC.pack(mask_crc(crc)))


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise PackError("protobuf: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise PackError("protobuf: varint longer than 10 bytes")


def parse_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of a serialised message; length-delimited values as memoryviews."""
    view = memoryview(buf)
    pos = 0
    while pos < len(view):
        key, pos = _read_varint(view, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(view, pos)
        elif wire == 1:
            value, pos = int.from_bytes(view[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _read_varint(view, pos)
            if pos + length > len(view):
                raise PackError("protobuf: length-delimited field runs past the end of the message")
            value, pos = view[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(view[pos : pos + 4], "little"), pos + 4
        else:
            raise PackError(f"protobuf: unsupported wire type {wire} (field {field})")
        yield field, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _parse_feature(buf: memoryview) -> list:
    values: list = []
    for field, _, value in parse_fields(buf):
        if field == 1:  # BytesList
            values += [bytes(v) for f, _, v in parse_fields(value) if f == 1]
        elif field == 2:  # FloatList, packed or not
            for f, w, v in parse_fields(value):
                if f == 1 and w == 2:
                    values += np.frombuffer(v, dtype="<f4").tolist()
                elif f == 1 and w == 5:
                    values.append(struct.unpack("<f", v.to_bytes(4, "little"))[0])
        elif field == 3:  # Int64List, packed or not
            for f, w, v in parse_fields(value):
                if f == 1 and w == 2:
                    pos = 0
                    while pos < len(v):
                        x, pos = _read_varint(v, pos)
                        values.append(_signed64(x))
                elif f == 1 and w == 0:
                    values.append(_signed64(v))
    return values


def parse_example(record: bytes | memoryview) -> dict[str, list]:
    """A serialised tf.train.Example as {feature name: list of values} (bytes, float or int)."""
    out: dict[str, list] = {}
    for field, _, features in parse_fields(record):
        if field != 1:
            continue
        for f, _, entry in parse_fields(features):
            if f != 1:
                continue
            key, value = "", memoryview(b"")
            for ef, _, ev in parse_fields(entry):
                if ef == 1:
                    key = bytes(ev).decode("utf-8")
                elif ef == 2:
                    value = ev
            out[key] = _parse_feature(value)
    return out


def read_images(path: str | os.PathLike[str], verify: bool = True) -> Iterator[np.ndarray]:
    """The C x H x W uint8 images of a StyleGAN TFRecord file (our own reader, CRCs verified)."""
    for record in read_records(path, verify):
        ex = parse_example(record)
        shape = tuple(int(v) for v in ex["shape"])
        (data,) = ex["data"]
        yield np.frombuffer(data, dtype=np.uint8).reshape(shape)


# ----------------------------------------------------------------------------------------------- pyramid / writer


def resolution_log2(size: int) -> int:
    """log2 of a power-of-two resolution >= 4 (raises PackError otherwise)."""
    log2 = int(size).bit_length() - 1
    if size < 4 or size != 1 << log2:
        raise PackError(
            f"TFRecord packs need a power-of-two resolution >= 4 (StyleGAN's layout); the images are {size}x{size}. "
            "Set normalise.size to a power of two or drop 'tfrecord' from pack.formats."
        )
    return log2


def pyramid(batch_chw: np.ndarray) -> list[np.ndarray]:
    """[S, S/2, ..., 4] levels of a (B, C, S, S) uint8 batch with dataset_tool's values (see module doc).

    Computed in integers: level k is round_half_even(block_sum_k / 4^k) where block_sum_k is the exact sum of each
    2^k x 2^k block, which equals dataset_tool's float32 cascade + np.rint whenever float32 holds the block means
    exactly (S <= 1024), and is about 5x faster."""
    log2 = resolution_log2(batch_chw.shape[-1])
    levels = [batch_chw]
    sums = batch_chw
    for k in range(1, log2 - 1):
        shift = 2 * k
        # 2x2 block sums of the previous sums; uint16 holds them up to k = 4 (255 * 4^k + rounding term)
        dtype = np.uint16 if 256 << shift <= 0xFFFF else np.uint32
        rows = np.add(sums[:, :, 0::2, :], sums[:, :, 1::2, :], dtype=dtype)
        sums = np.add(rows[:, :, :, 0::2], rows[:, :, :, 1::2])
        # round half to even: add d/2 - 1, plus 1 more when the quotient is odd, then shift (d = 4^k); in place
        rounded = sums >> shift
        rounded &= 1
        rounded += sums
        rounded += (1 << (shift - 1)) - 1
        rounded >>= shift
        levels.append(rounded.astype(np.uint8))
    return levels


def tfrecord_names(name: str, size: int) -> list[str]:
    """File names from the full resolution down to 4x4: ``<name>-rNN.tfrecords``."""
    return [f"{name}-r{lg:02d}.tfrecords" for lg in range(resolution_log2(size), 1, -1)]


def labels_name(name: str) -> str:
    return f"{name}-rxx.labels"


def one_hot(labels: np.ndarray, width: int | None = None) -> np.ndarray:
    """float32 one-hot rows; ``width`` defaults to max label + 1 (column = class id, 0 = unlabelled)."""
    labels = np.asarray(labels, dtype=np.int64)
    width = int(labels.max()) + 1 if width is None else width
    out = np.zeros((len(labels), width), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def write_tfrecords(
    out_dir: str | os.PathLike[str],
    name: str,
    images: Iterable[np.ndarray],
    size: int,
    labels: np.ndarray | None = None,
    batch: int = 16,
    fsync: bool = True,
) -> int:
    """Write the images (``size x size x 3`` uint8 HWC, already in record order) as ``out_dir/<name>-rNN.tfrecords``
    plus the one-hot labels file when ``labels`` is given; the directory appears atomically. Returns the count.
    ``batch`` images are downsampled together: small batches keep the pyramid's arrays in the CPU cache (alone, the
    pyramid of 8 images of 256 x 256 took 0.15 ms of CPU per image here, of 64 images 0.36 ms)."""
    out_dir = Path(out_dir)
    names = tfrecord_names(name, size)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out_dir)  # removes the temp folders of killed earlier writes first
    count = 0
    try:
        with ExitStack() as stack:
            files = [stack.enter_context(open(tmp / n, "wb", buffering=WRITE_BUFFER)) for n in names]
            writers = [ImageRecordWriter(fh, (3, size >> i, size >> i)) for i, fh in enumerate(files)]

            def write_levels(levels: list[np.ndarray]) -> None:
                for writer, level in zip(writers, levels, strict=True):
                    for img in level:
                        writer.write(img)

            # a worker thread computes the next batch's lower resolutions while this one writes (numpy and file
            # writes release the GIL)
            with ThreadPoolExecutor(max_workers=1) as pool:
                pending: Future | None = None
                for chw in batched_chw(images, batch):
                    if chw.shape[1:] != (3, size, size):
                        raise PackError(f"images are {chw.shape[2]}x{chw.shape[3]}, expected {size}x{size}")
                    future = pool.submit(pyramid, chw)
                    if pending is not None:
                        write_levels(pending.result())
                    pending = future
                    count += len(chw)
                if pending is not None:
                    write_levels(pending.result())
            if fsync:
                for fh in files:
                    fh.flush()
                    os.fsync(fh.fileno())
        if labels is not None:
            labels = np.asarray(labels)
            if len(labels) != count:
                raise PackError(f"{len(labels)} labels for {count} images: the dataset table and the images disagree")
            with open(tmp / labels_name(name), "wb") as fh:
                np.save(fh, one_hot(labels))
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
        if fsync:
            fsync_path(out_dir.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return count


def write_pack(job: PackJob) -> PackWritten:
    """The ``tfrecord`` pack of :mod:`animefaces.pack.formats`: records in a seeded permutation of the table."""
    size = first_size(job.items)
    resolution_log2(size)  # fail before reading everything
    seed = job.options["seed"]
    perm = np.random.default_rng(seed).permutation(len(job.items))
    stored = want_labels(job.options["labels"], job.labels)
    write_tfrecords(
        job.out,
        job.name,
        iter_arrays(job.sources(order=perm)),
        size,
        labels=job.labels[perm] if stored else None,
    )
    files = sorted(p for p in job.out.iterdir() if p.is_file())
    order = f"record i is dataset table row numpy.random.default_rng({seed}).permutation({len(job.items)})[i]"
    return PackWritten(size, files, stored, order)

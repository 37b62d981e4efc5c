#!/usr/bin/python3
"""Prints a payless checkpoint and verifies its checksum, with nothing but Python and numpy.

Usage: scripts/read_checkpoint.py FILE [--values N]

It reads the safetensors layout itself (8-byte little-endian header length, JSON header, raw
little-endian data) rather than through the safetensors package, so it shows that the format is
what core/serialize.h says it is. It prints the metadata, each tensor's name, shape and first
values, and recomputes metadata "data_checksum" (checksum64 in core/serialize.h). Exit status: 0
if the file is sound, 1 with a message on stderr if not. It is not a loader for training: the
C++ reader (core/serialize.cpp) checks more (e.g. duplicate JSON keys).
"""
import argparse
import json
import math
import sys

import numpy as np

FORMAT = "payless-checkpoint-1"
MAX_HEADER = 100 << 20
INDEX_STEP = np.uint64(0x9E3779B97F4A7C15)
MASK = (1 << 64) - 1


def mix64(z):
    """SplitMix64's finaliser on a uint64 array (wraps modulo 2^64 like the C++)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def checksum64(data):
    """sum_i mix64(w_i + i * INDEX_STEP) mod 2^64 over zero-padded little-endian words w_i, then
    mix64(sum ^ byte count). In chunks, so a large file needs little extra memory."""
    count = len(data)
    padded = bytes(data) + b"\0" * (-count % 8) if count % 8 else data
    words = np.frombuffer(padded, dtype="<u8")
    total = 0
    chunk = 1 << 20
    with np.errstate(over="ignore"):
        for start in range(0, len(words), chunk):
            w = words[start:start + chunk].astype(np.uint64)
            index = np.arange(start, start + len(w), dtype=np.uint64)
            total = (total + int(np.sum(mix64(w + index * INDEX_STEP), dtype=np.uint64))) & MASK
        return int(mix64(np.array([total ^ count], dtype=np.uint64))[0])


def fail(path, message):
    sys.exit(f"checkpoint '{path}': {message}")


def read(path, show):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail(path, f"the file has {len(blob)} bytes, fewer than the 8-byte header length")
    n = int.from_bytes(blob[:8], "little")
    if n > MAX_HEADER or n > len(blob) - 8:
        fail(path, f"header length {n} is too large for a file of {len(blob)} bytes")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(path, f"the header is not valid JSON ({e})")
    data = memoryview(blob)[8 + n:]
    if not isinstance(header, dict):
        fail(path, "the header is not a JSON object")

    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fail(path, f"no __metadata__ with format {FORMAT}: not a payless checkpoint")
    print(f"file: {path}")
    print("metadata:")
    for key in sorted(meta):
        print(f"  {key}: {meta[key]}")

    entries = sorted(header.items(), key=lambda item: tuple(item[1]["data_offsets"]))
    total = 0
    for name, spec in entries:
        if spec.get("dtype") != "F32":
            fail(path, f"tensor '{name}': dtype {spec.get('dtype')} is not F32")
        shape = [int(d) for d in spec["shape"]]
        begin, end = (int(x) for x in spec["data_offsets"])
        numel = math.prod(shape)
        if begin != total or end - begin != 4 * numel or end > len(data):
            fail(path, f"tensor '{name}': data_offsets [{begin}, {end}] do not fit shape {shape} "
                       f"at byte {total} of a {len(data)}-byte data section")
        total = end
    if total != len(data):
        fail(path, f"the tensors end at byte {total} of a {len(data)}-byte data section")

    print(f"tensors: {len(entries)} ({total // 4} values, {total} bytes)")
    for name, spec in entries:
        begin, end = spec["data_offsets"]
        values = np.frombuffer(data[begin:end], dtype="<f4").reshape(spec["shape"])
        first = " ".join(f"{v:.6g}" for v in values.reshape(-1)[:show])
        more = " ..." if values.size > show else ""
        print(f"  {name}  F32 {list(values.shape)}  first values: {first}{more}")

    actual = f"{checksum64(data):016x}"
    if actual != meta.get("data_checksum"):
        fail(path, f"data checksum mismatch (header says {meta.get('data_checksum')}, "
                   f"the data hashes to {actual}): the file is corrupt")
    print(f"checksum: OK ({actual})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--values", type=int, default=6, help="values to print per tensor")
    args = parser.parse_args()
    try:
        read(args.file, args.values)
    except OSError as e:
        sys.exit(f"checkpoint '{args.file}': {e.strerror}")
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        sys.exit(f"checkpoint '{args.file}': malformed header entry ({e!r})")


if __name__ == "__main__":
    main()

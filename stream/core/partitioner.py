"""The Kafka default partitioner: murmur2 of the serialized key, mod the partition count.

Stages send one record per destination partition, so they must compute the
partition of every key exactly as the producer (and faust's table routing,
which asks the producer) would. A test checks this against aiokafka's own
partitioner.

murmur2 runs in native code (the ``murmurhash2`` package, Rust: ~0.15 µs for a
wallet identifier) where its wheel installs, else in Python (~3 µs: every new
identifier of a sign-in is hashed three or four times on its way through the
stages). Only the Python one is cached per key (identifiers and person ids repeat):
a hit in a full cache of 262,144 keys costs 0.8 µs, more than hashing natively again
(0.2 to 0.4 µs), and the cache kept a quarter of a million keys alive.
"""

from __future__ import annotations

import struct
from functools import lru_cache

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2_python(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n = length // 4
    for k in struct.unpack_from(f"<{n}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    base = n * 4
    if tail >= 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


try:
    from murmurhash2 import murmurhash2 as _native
except ImportError:  # no wheel for this platform
    murmur2 = murmur2_python
else:

    def murmur2(data: bytes) -> int:
        """Kafka's murmur2, as an unsigned int (native code; see :func:`murmur2_python`)."""
        return _native(data, _SEED)


def partition_for(key: str, partitions: int) -> int:
    """The partition of a string key (UTF-8 encoded), as Kafka's default partitioner picks it."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


if murmur2 is murmur2_python:
    partition_for = lru_cache(maxsize=1 << 18)(partition_for)

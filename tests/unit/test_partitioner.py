"""Our partitioner must pick exactly the partition the producer's own partitioner picks."""

import importlib.util
import sys

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from stream.core import partitioner
from stream.core.partitioner import murmur2, murmur2_python, partition_for


@pytest.mark.parametrize("impl", [murmur2, murmur2_python], ids=["used", "python"])
@given(data=st.binary(max_size=200))
def test_murmur2_equals_the_kafka_clients(impl, data):
    assert impl(data) == aiokafka_murmur2(data) & 0xFFFFFFFF


def test_murmur2_runs_in_native_code_where_its_wheel_installs():
    assert partitioner.murmur2 is not murmur2_python  # pyproject.toml installs it


@given(st.text(max_size=80), st.integers(1, 64))
def test_partition_for_equals_the_producers_partitioner(key, partitions):
    everything = list(range(partitions))
    assert partition_for(key, partitions) == DefaultPartitioner()(
        key.encode(), everything, everything
    )


@pytest.mark.parametrize("impl", [murmur2, murmur2_python], ids=["used", "python"])
def test_known_vector_from_the_java_client(impl):
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2: "21" -> -973932308
    assert impl(b"21") == -973932308 & 0xFFFFFFFF


def test_without_the_native_hash_the_python_one_is_used_and_cached(monkeypatch):
    """Where no murmurhash2 wheel installs: a copy of the module, loaded with the
    import failing, falls back to the Python murmur2 and caches partitions per key."""
    monkeypatch.setitem(sys.modules, "murmurhash2", None)  # import raises ImportError
    spec = importlib.util.spec_from_file_location("fallback_partitioner", partitioner.__file__)
    fallback = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fallback)
    assert fallback.murmur2 is fallback.murmur2_python
    everything = list(range(12))
    for key in ("wallet:0x51ce", "anon:d-1", "p0795cfd3a5145e981f1f", "é"):
        expected = DefaultPartitioner()(key.encode(), everything, everything)
        assert fallback.partition_for(key, 12) == expected == partition_for(key, 12)
    assert fallback.partition_for.cache_info().currsize == 4

"""Our partitioner must pick exactly the partition the producer's own partitioner picks."""

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

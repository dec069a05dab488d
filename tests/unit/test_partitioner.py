"""Our partitioner must pick exactly the partition the producer's own partitioner picks."""

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from stream.core.partitioner import murmur2, partition_for


@given(st.binary(max_size=200))
def test_murmur2_equals_the_kafka_clients(data):
    assert murmur2(data) == aiokafka_murmur2(data) & 0xFFFFFFFF


@given(st.text(max_size=80), st.integers(1, 64))
def test_partition_for_equals_the_producers_partitioner(key, partitions):
    everything = list(range(partitions))
    assert partition_for(key, partitions) == DefaultPartitioner()(
        key.encode(), everything, everything
    )


def test_known_vector_from_the_java_client():
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2: "21" -> -973932308
    assert murmur2(b"21") == -973932308 & 0xFFFFFFFF

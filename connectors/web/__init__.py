"""The web collector: Segment's HTTP tracking API and Sign-In With Ethereum, into Kafka."""

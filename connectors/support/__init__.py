"""The support webhook receiver: Zendesk and Intercom ticket events into Kafka."""

"""c360 connectors: small services that bring chain, web and support events into Kafka."""

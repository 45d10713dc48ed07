"""Kafka ingest: topics, the scene consumer loop's adapter, producers and the DLQ."""

"""Local infrastructure runners: the embedded Kafka broker and topic administration."""

"""lms-bridge: the service core (config, state store, identity, pipeline, outbox, CLI)."""

"""Ingest: connectors' activities through identity into statements, evidence and the outbox."""

"""Operator tools: backfill, cursors, doctor, sites, the outbox's dead letters."""

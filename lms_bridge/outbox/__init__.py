"""Outbox: statements to the LRS (flush) and the statements that void or forget."""

"""Ledger: JP records mirrored back from the LRS, and the reports and exports HR reads."""

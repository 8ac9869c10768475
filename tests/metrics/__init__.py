"""Tests of the metrics core: ledger, series, live blocks, snapshots."""

"""Relaying trainers' signed commitments and openings in batches (`commitBatch`, `revealBatch`)."""

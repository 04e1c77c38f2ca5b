"""The trainer: trains on private data and commits its update each round."""

"""Learning: data, partitioning, the model and local training. Pure PyTorch and numpy."""

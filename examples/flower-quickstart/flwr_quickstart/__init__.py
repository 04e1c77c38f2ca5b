"""flwr_quickstart: A Flower / PyTorch app."""

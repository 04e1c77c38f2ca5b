"""Built-in example apps: `mnist-cnn` (the default), `mnist-bn` (BatchNorm) and `tabular` (CSV)."""

"""Training datasets, Ludwig config handling and model evaluation."""

"""Training: the one training loop (`trainer`), and the pretraining and fine-tuning entry points."""

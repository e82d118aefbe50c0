"""Training: losses, synthetic pre-training, fine-tuning and adaptation, weight averaging."""

"""embaug: augmentations for self-supervised contrastive fine-tuning of text embeddings."""

__version__ = "0.1.0"

"""Scores of document embeddings: kNN and linear accuracy (MTEB and t-SNE to come)."""

"""Data: WordPiece vocabulary training and pretraining examples."""

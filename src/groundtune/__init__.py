"""groundtune: turn a source passage and a few Q&A pairs into a small model that answers faithfully."""

__version__ = "0.1.0"

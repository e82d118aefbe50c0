"""XMR: cross-script handwriting retrieval engine (library; no UI code here)."""

__version__ = "0.1.0"

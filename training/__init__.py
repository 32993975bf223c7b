"""Synthetic catalog and the small CLIP model that clipmatch bundles."""

"""Pixels to vectors: decoding with limits, synthetic camera views, the quality gate, the
embedders, locating the object, local features and colour layouts. Knows the project's
configuration, never the store."""

"""A project open for live use: the ``Service`` facade the HTTP server calls, the parts it
delegates to (references, the review desk, thresholds, health) and the cameras."""

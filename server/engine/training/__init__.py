"""Training and versions: reviewed data exported for real clients, detectors fine-tuned
on it, the model registry, and versions compared side by side."""

"""Model files: loading safely, repairing Keras 2 files, reading configs and weights without TensorFlow, limits, atomic output."""

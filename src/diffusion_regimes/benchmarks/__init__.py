"""Performance measurements.  Each prints its timings and a ratio against a baseline from the same run."""

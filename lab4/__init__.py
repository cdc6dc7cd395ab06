"""lab4: pose-conditioned video prediction with a conditional VAE (the Lab 4 assignment)."""

__version__ = "0.1.0"

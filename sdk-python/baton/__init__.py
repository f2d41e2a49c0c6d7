"""Baton worker SDK: register handlers for actions and run them from Kafka."""

__version__ = "0.1.0"

__all__ = ["__version__"]

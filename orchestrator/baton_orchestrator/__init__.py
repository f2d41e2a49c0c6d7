"""Baton orchestrator: workflow definitions, runs, and durable dispatch of jobs over Kafka."""

__version__ = "0.1.0"

"""Artifact storage: safe path parsing, the repository protocol and its implementations."""

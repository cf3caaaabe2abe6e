"""Spec -> networkx op graph: expansion of the compact forms, validation, shapes, JSON/DOT output."""
from nasgraph.graph.build import compile_spec, model_context
from nasgraph.graph.expand import INPUT

__all__ = ["INPUT", "compile_spec", "model_context"]

"""nasgraph: which attention should this Transformer use, per layer or per head?"""
__version__ = "0.1.0"

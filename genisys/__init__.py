"""genisys: compute resource management as a reconciling controller."""

__version__ = "0.1.0"

"""genisys: compute resource management as a reconciling controller."""

from genisys.version import __version__

__all__ = ["__version__"]

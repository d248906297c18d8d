"""fastlb: a TCP/HTTP load balancer with a native hot path and sticky sessions."""

from ._version import __version__

__all__ = ["__version__"]

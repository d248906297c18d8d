"""The only version string of fastlb (setup.py and fastlb.__version__ read it)."""

__version__ = "0.1.0.dev0"

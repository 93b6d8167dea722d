"""wdsr: WDSR super-resolution on MindSpore, as a command-line tool and a library (core)."""

__version__ = "0.1.0"

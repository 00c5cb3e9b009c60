"""vidsr: video super-resolution with VDSR, EDSR, SRCNN and MDSR over a streaming PyAV pipeline."""

__version__ = "0.1.0"

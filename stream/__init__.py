"""c360 stream: the pure identity/profile core and the Faust worker around it."""

__version__ = "0.1.0"

"""bgpctl: a BGP route controller for active-active Amazon Connect regions."""

__version__ = "0.1.0"

"""multusd: the Multus CNI thick plugin for K3s + Flannel, in Python."""

__version__ = "0.1.0"

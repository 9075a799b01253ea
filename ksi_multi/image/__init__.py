"""Offline images: Kubernetes built from Go modules, node and workload images from Debian packages."""

"""The sandbox: a virtual HPC cluster (login host + compute hosts, real Slurm, rootless Podman) on one machine."""

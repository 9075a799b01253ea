"""ksi-multi: a multi-node Kubernetes cluster inside a Slurm job, without root."""

__version__ = "0.1.0"

"""`ksi-multi bench`: network measurements on a running job's cluster, each against the hosts' own network
measured in the same run on the same hosts."""

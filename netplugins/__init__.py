"""Network plugins that join the node containers of a job into one cluster network."""

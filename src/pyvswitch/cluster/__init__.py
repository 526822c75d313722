"""Cluster mode (issue 13): hosts sharing desired state and virtual subnets through etcd."""

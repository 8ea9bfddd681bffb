"""A real Kubernetes control plane on loopback for tests and the demo (kube-apiserver + etcd)."""

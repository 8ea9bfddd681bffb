"""calico-node demo: a multi-node Calico network in namespaces on one machine."""

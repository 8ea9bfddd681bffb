"""calico-kube-controllers: Calico's Kubernetes controllers (docs/kube-controllers.md)."""

"""Datastore access: the Backend protocol, the etcd v3 backend, the syncer."""

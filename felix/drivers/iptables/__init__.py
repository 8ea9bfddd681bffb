"""iptables: typed rules, Calico's hash comments, restore text, per-table reconciliation."""

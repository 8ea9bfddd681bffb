"""libcalico: the shared library of the Python Calico node stack.

Imports nothing from the daemons (confd, felix, calico_cni, calico_node, calicoctl).
"""

__version__ = "0.1.0"

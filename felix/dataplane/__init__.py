"""The owner loop: one thread drains the queue and applies desired state in a fixed order."""

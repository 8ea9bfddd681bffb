"""Drivers: desired versus kernel state for one kind of kernel object, applied in batches."""

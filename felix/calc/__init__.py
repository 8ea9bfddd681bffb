"""Pure computation: datastore snapshot → the desired kernel state of one host."""

"""projectcalico.org/v3 resources as typed values, their codec, validation, selectors, keys."""

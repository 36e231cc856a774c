"""Whether a converted image may be placed: complete, well-defined, what BIDS requires, validator-clean."""

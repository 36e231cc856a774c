"""Stage 4 - write: the only code that writes into the BIDS dataset."""

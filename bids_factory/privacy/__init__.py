"""What may leave a visit: its identifiers, matched in free text, and the sidecar allow-list."""

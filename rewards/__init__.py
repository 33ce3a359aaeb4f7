"""Coverage-freshness scoring per road segment, epoch allocation, the ledger and its proofs."""

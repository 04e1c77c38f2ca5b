"""Storage: the canonical update codec, digests, and IPFS access."""

"""Everything that talks to the fedledger contracts."""

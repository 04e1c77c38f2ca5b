"""`python -m fedledger` is the `fedledger` command."""

from fedledger.cli import main

main()

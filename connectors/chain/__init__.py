"""``c360 connect chain``: an EVM chain connector on web3.py (logs, wallet transactions, reorgs)."""

"""Drift from served traffic: the request log read back and compared with what the served
version was trained and evaluated on (`python -m pipeline monitor`)."""

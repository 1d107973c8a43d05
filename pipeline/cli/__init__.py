"""`python -m pipeline`'s commands, one module each: `add_to` declares its arguments and
`main` runs it, over what they share in `arguments` (exit codes, common flags, reading
a profile with its overrides)."""

# clean rules: see the issue for this stage (not yet written).

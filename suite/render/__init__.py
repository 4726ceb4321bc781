"""Results files -> one summary -> markdown, figures, a comparison of two runs, their statistics.

Everything here reads files and never runs a measurement: it imports the core, never the sweep.
What it must know of the providers (their order, roles and preference) is handed over as a
`Lineup` by the command that reads the file."""

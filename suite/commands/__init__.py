"""The command line: `cli` dispatches to one module per command (flags, device, which files in and
out), importing only the command asked for. The top layer: it may import every package below."""

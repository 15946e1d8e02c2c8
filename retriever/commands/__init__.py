"""The command line's commands by group (search, build, serve), on the typer app that cli.py runs; results drawn for
the terminal."""

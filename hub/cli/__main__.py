"""`python -m hub.cli`: the same as the installed `hub` command."""

from hub.cli.main import main

main()

"""`python -m roadswarm` is the same as the `roadswarm` command."""

from roadswarm.cli import main

main()

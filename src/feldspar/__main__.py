"""`python -m feldspar` runs the command line."""

from feldspar.cli import main

main()

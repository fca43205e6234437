"""`python -m spol`: the `spol` command, where the console script is not on the PATH."""

from spol.cli import main

if __name__ == "__main__":
    main()

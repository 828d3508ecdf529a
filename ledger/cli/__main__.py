"""`python -m ledger.cli ...` runs the command line as `rebate-ledger ...` does."""

from ledger.cli import main

if __name__ == "__main__":
    main()

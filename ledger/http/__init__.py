"""The HTTP entrypoint (`rebate-ledger serve`): ledger.http.app builds the FastAPI app."""

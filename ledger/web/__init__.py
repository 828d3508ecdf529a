"""The web app (issue 9): server-rendered pages over the application service, for people.

`add_web(app, service)` adds the pages and the vendored static assets to the FastAPI app that
`rebate-ledger serve` runs. Like the HTTP API, every page only reads its parameters, calls the
service for the signed-in principal and renders what it answers.
"""

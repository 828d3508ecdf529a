"""The ASGI application for uvicorn's workers (`rebate-ledger serve --workers N` imports this
in each worker process): the service is built once per process, from the environment."""

from ledger.bootstrap import ApiSettings, build_service
from ledger.http.app import create_app

settings = ApiSettings()
app = create_app(build_service(settings=settings, server=True), settings)

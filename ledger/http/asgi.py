"""The ASGI application for uvicorn's workers (`rebate-ledger serve --workers N` imports this
in each worker process): the service is built once per process, from the environment; the web
app's pages are added beside the API."""

from ledger.bootstrap import ApiSettings, build_service
from ledger.http.app import create_app
from ledger.web.app import add_web

settings = ApiSettings()
service = build_service(settings=settings, server=True)
app = create_app(service, settings)
add_web(app, service)

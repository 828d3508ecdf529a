# The rebate-ledger image: the CLI and its workers (relay, intake, projections).
# Built from this repository by docker-compose.yml; installs only from PyPI, pinned by
# constraints.txt.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LEDGER_HOME=/var/lib/rebate-ledger

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY ledger ./ledger
COPY consumers ./consumers
COPY replay ./replay
RUN pip install --constraint constraints.txt . \
    && useradd --system --create-home --home-dir /var/lib/rebate-ledger ledger

USER ledger
ENTRYPOINT ["rebate-ledger"]
CMD ["--help"]

# ciba-gateway: slim, non-root, runtime dependencies only; config and keys are mounts.
#   docker build -t ciba-gateway .
#   docker run -p 8080:8080 -v /etc/ciba-gateway:/config:ro -v ciba-data:/var/lib/ciba-gateway \
#     -e ACME_CALLCENTER_SECRET=... -e ACME_SUBJECT_SALT=... ciba-gateway
# (/etc/ciba-gateway holds gateway.yaml - config/gateway.example.yaml is a start - and its keys.)
# A production image: the connectors only. The upstream simulators (connectors/*-sim) are
# separate distributions for the demo and the tests (`make demo`), never installed here.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY connectors/bankid ./connectors/bankid
COPY connectors/ciba ./connectors/ciba
COPY connectors/freja ./connectors/freja
COPY connectors/smslink ./connectors/smslink
# The same command is run in a fresh venv by tests/e2e/test_dockerfile.py.
RUN python -m venv /opt/venv && /opt/venv/bin/pip install . ./connectors/bankid ./connectors/ciba ./connectors/freja ./connectors/smslink

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin ciba \
 && mkdir -p /var/lib/ciba-gateway && chown ciba /var/lib/ciba-gateway
COPY --from=build /opt/venv /opt/venv
USER ciba
WORKDIR /var/lib/ciba-gateway
VOLUME ["/var/lib/ciba-gateway"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["ciba-gateway"]
CMD ["serve", "--config", "/config/gateway.yaml", "--host", "0.0.0.0", "--port", "8080"]

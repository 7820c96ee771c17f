# facturflow serve in a container: `docker build -t facturflow .` then
# `docker run --rm -p 127.0.0.1:8080:8080 -e FACTURFLOW_SERVE_TOKEN=... facturflow`
# (see README, "The HTTP service"). lxml, saxonche and pikepdf ship binary wheels: no compiler.
FROM python:3.11-slim
WORKDIR /opt/facturflow
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
COPY schemas ./schemas
COPY schematron ./schematron
RUN pip install --no-cache-dir -c constraints.txt '.[serve]' \
    && useradd --system --uid 10001 --no-create-home facturflow
USER facturflow
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4)"]
# Off loopback (0.0.0.0 inside the container), so FACTURFLOW_SERVE_TOKEN must be set at run time.
ENTRYPOINT ["facturflow", "serve", "--host", "0.0.0.0", "--port", "8080"]

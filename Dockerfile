# genisys as a container: the controller, configured through GENISYS_* variables.
#   docker build -t genisys .
#   docker run -e GENISYS_TOKEN=... -p 7001:7001 genisys
# In a Pod, mount a folder of manifests and set GENISYS_MANIFESTS (sidecar mode):
# see deploy/kubernetes/.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/genisys
COPY pyproject.toml setup.py README.md ./
COPY genisys ./genisys
# The controller only: no extras (the docker connector's SDK is genisys[docker]).
RUN pip install . \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/genisys genisys \
    && mkdir -p /var/lib/genisys && chown genisys:genisys /var/lib/genisys

# Inside a container genisys listens on every address, so it refuses to start
# without an API token (GENISYS_TOKEN, or GENISYS_TOKENS_FILE): probes need none.
ENV GENISYS_BIND=0.0.0.0 \
    GENISYS_PORT=7001 \
    GENISYS_STORE=sqlite:////var/lib/genisys/genisys.db

USER 10001
WORKDIR /var/lib/genisys
VOLUME /var/lib/genisys
EXPOSE 7001

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GENISYS_PORT', '7001'), timeout=2)"]

# Exec form: genisys is PID 1 and gets SIGTERM itself (it drains, then exits).
ENTRYPOINT ["genisys", "serve"]

# llm-exporter: the exporter, the provider simulator and the demo, in one small image.
# Build: docker build -t llm-exporter:0.1.0 .    Run: docker run -p 9820:9820 llm-exporter:0.1.0
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged uid/gid so volume permissions are predictable.
RUN groupadd --system --gid 10001 llm-exporter \
 && useradd --system --uid 10001 --gid llm-exporter --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin llm-exporter

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install . && rm -rf /src
WORKDIR /

USER 10001:10001
EXPOSE 9820

# The slim image has neither curl nor wget: ask Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9820/-/healthy', timeout=4)"]

ENTRYPOINT ["llm-exporter"]
CMD ["serve", "--listen", "0.0.0.0:9820"]

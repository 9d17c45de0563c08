# The ringscope API (see docker-compose.yml for Neo4j beside it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ringscope ./ringscope
RUN pip install . && useradd --create-home ringscope && mkdir -p /work && chown ringscope /work

USER ringscope
WORKDIR /work
EXPOSE 8000
CMD ["ringscope", "serve", "--host", "0.0.0.0", "--port", "8000"]

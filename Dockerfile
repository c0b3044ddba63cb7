# gridwatch worker / ops image (used by docker-compose.yml)
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY geo geo
COPY pipeline pipeline
COPY topics topics
COPY ops ops
RUN pip install --no-cache-dir .
USER 65534:65534
ENTRYPOINT ["gridwatch"]
CMD ["worker"]

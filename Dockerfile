# gridwatch worker / ops image (used by docker-compose.yml). Runs as the unprivileged user
# `gridwatch`; its state (faust data dir, heartbeat) lives in the volume /var/lib/gridwatch.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/gridwatch gridwatch
WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
COPY geo geo
COPY pipeline pipeline
COPY topics topics
COPY ops ops
RUN pip install --no-cache-dir -c requirements.lock .
ENV GRIDWATCH_DATA_DIR=/var/lib/gridwatch
VOLUME /var/lib/gridwatch
USER gridwatch:gridwatch
WORKDIR /var/lib/gridwatch
ENTRYPOINT ["gridwatch"]
CMD ["worker"]

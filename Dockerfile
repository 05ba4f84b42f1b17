# One image for every shouwang service: ingest, analytics, notify, the API, the simulator.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SHOUWANG_STATE_DIR=/state
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core ./core
COPY responsibility ./responsibility
COPY lifecycle ./lifecycle
COPY broker ./broker
COPY gateway ./gateway
COPY ingest ./ingest
COPY analytics ./analytics
COPY notify ./notify
COPY api ./api
COPY dashboards ./dashboards
COPY simulators ./simulators
COPY bench ./bench
COPY shouwang ./shouwang
RUN pip install --no-cache-dir . && mkdir -p /state
ENTRYPOINT ["shouwang"]
CMD ["--help"]

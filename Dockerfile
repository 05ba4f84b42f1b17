# One image for every shouwang service: ingest, analytics, notify, the API, the simulator.
# It runs as the unprivileged user shouwang, uid and gid 1883: the same numbers as the user
# mosquitto of the eclipse-mosquitto image, so that the broker reads the password file and ACL
# that setup and broker-sync write (mode 0600) and broker-sync may signal it to reload them.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SHOUWANG_STATE_DIR=/state
RUN groupadd --system --gid 1883 shouwang \
 && useradd --system --uid 1883 --gid 1883 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin shouwang
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core ./core
COPY responsibility ./responsibility
COPY lifecycle ./lifecycle
COPY broker ./broker
COPY backups ./backups
COPY sites ./sites
COPY gateway ./gateway
COPY ingest ./ingest
COPY analytics ./analytics
COPY notify ./notify
COPY api ./api
COPY dashboards ./dashboards
COPY simulators ./simulators
COPY bench ./bench
COPY shouwang ./shouwang
RUN pip install --no-cache-dir . \
 && mkdir -p /state /mosquitto/config \
 && chown 1883:1883 /state /mosquitto/config
USER 1883:1883
ENTRYPOINT ["shouwang"]
CMD ["--help"]

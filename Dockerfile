# The c360 worker and connectors, for docker-compose.yml (no Docker engine is
# needed for development: see the README).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY stream ./stream
COPY connectors ./connectors
COPY schemas ./schemas
RUN pip install --no-cache-dir -c constraints.txt .
ENV C360_WEB_HOST=0.0.0.0 C360_DATA_DIR=/data
VOLUME /data
EXPOSE 6066
ENTRYPOINT ["c360"]
CMD ["worker"]

# Kuzet worker image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY detectors ./detectors
COPY streams ./streams
RUN pip install --no-cache-dir . && useradd --system --create-home kuzet
USER kuzet
ENV KUZET_WEB_HOST=0.0.0.0 KUZET_STATE_DIR=/home/kuzet/state
EXPOSE 6066
ENTRYPOINT ["kuzet"]
CMD ["worker"]

# Kuzet worker image (used by docker-compose.yml).
#
# The dependencies are the tested versions, hash-checked, from requirements.lock
# (see the README's "Dependencies"), in a layer of their own: a change to Kuzet's
# source reuses it. Then Kuzet itself, without resolving anything again.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
# Every package the `kuzet` command runs (pyproject's packages.find): worker,
# backtest, replay, capture, simulate.
COPY pyproject.toml README.md LICENSE ./
COPY detectors ./detectors
COPY streams ./streams
COPY simulator ./simulator
RUN pip install --no-deps . && rm -rf build ./*.egg-info \
    && useradd --system --create-home kuzet
USER kuzet
# The worker keeps no state on disk: partition state lives in Kafka (streams/state.py).
ENV KUZET_WEB_HOST=0.0.0.0
EXPOSE 6066
ENTRYPOINT ["kuzet"]
CMD ["worker"]

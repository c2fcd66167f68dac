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
# The image runs as an unprivileged user with a fixed numeric id (so `runAsNonRoot`
# checks can see it is not root); it owns nothing in /app, which it cannot change.
RUN pip install --no-deps . && rm -rf build ./*.egg-info \
    && groupadd --system --gid 10001 kuzet \
    && useradd --system --uid 10001 --gid kuzet --create-home --shell /usr/sbin/nologin kuzet
USER 10001:10001
# The worker keeps no state on disk: partition state lives in Kafka (streams/state.py).
#
# The web server listens on every interface *of the container*: that is what lets
# Prometheus in the same compose network scrape worker:6066 and what a published
# port forwards to. It reaches no other host unless a port is published, and then
# publish it on loopback (`-p 127.0.0.1:6066:6066`, as docker-compose.yml does),
# and set KUZET_WEB_TOKEN so /alerts and /status need a token (the worker logs a
# warning when they are open off loopback). Outside a container the default is
# 127.0.0.1 (streams/settings.py).
ENV KUZET_WEB_HOST=0.0.0.0
EXPOSE 6066
ENTRYPOINT ["kuzet"]
CMD ["worker"]

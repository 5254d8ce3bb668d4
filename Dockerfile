# fleetkit: one image for every fleet process (`fleet bot run NAME`, `fleet broker serve`,
# `fleet db upgrade` ...). Build from the source tree: docker build -t fleetkit:latest .
# No secret goes into the image: credentials and the database password come at run time
# (env files, a Compose secret or a password file). See docs/deploy.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLEET_HOME=/var/lib/fleet \
    FLEET_LOG_FORMAT=json

RUN groupadd --system --gid 10001 fleet \
    && useradd --system --uid 10001 --gid fleet --home-dir /var/lib/fleet \
       --shell /usr/sbin/nologin fleet \
    && install -d -o fleet -g fleet -m 0750 /var/lib/fleet

WORKDIR /opt/fleetkit

# Dependencies first, in their own layer: rebuilt only when pyproject.toml changes, not on
# every edit of the source. The `live` extra (ccxt) is included: one image serves sandbox,
# paper and live bots alike; so is `oidc` (Authlib), for a dashboard that logs in with OIDC.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['live'] + p['optional-dependencies']['oidc']))" > requirements.txt \
    && pip install -r requirements.txt

# Then the package itself, without touching the dependencies installed above.
COPY README.md ./
COPY src ./src
RUN pip install --no-deps . && rm -rf build src/*.egg-info

USER fleet
WORKDIR /var/lib/fleet
VOLUME ["/var/lib/fleet"]
ENTRYPOINT ["fleet"]
CMD ["--help"]

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

# Dependencies first, in their own layer: rebuilt only when pyproject.toml or the
# constraints change, not on every edit of the source. The extras come from FLEETKIT_EXTRAS:
# by default `live` (ccxt: one image serves sandbox, paper and live bots alike) and `oidc`
# (Authlib, for a dashboard that logs in with OIDC). Learning bots (strategy rl_policy) need
# `ml` too, about 1 GB more: docker build --build-arg FLEETKIT_EXTRAS=live,oidc,ml .
# (`fleet deploy compose` adds it in the fleet's own image instead, when the config has one.)
# With torch among them, TORCH=cpu (the default) installs its CPU build: the pins in
# constraints/torch-cpu.txt, from PyTorch's CPU index, since PyPI's Linux torch is the CUDA
# build; any other value (--build-arg TORCH=cuda, a host with a GPU) takes PyPI's.
ARG FLEETKIT_EXTRAS=live,oidc
ARG TORCH=cpu
COPY pyproject.toml ./
COPY constraints/ ./constraints/
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e.strip() for e in os.environ['FLEETKIT_EXTRAS'].split(',') if e.strip()]; print('\n'.join(p['dependencies'] + [r for e in extras for r in p['optional-dependencies'][e]]))" > requirements.txt \
    && if [ "$TORCH" = cpu ] && grep -q '^torch' requirements.txt; then \
         set -- -c constraints/torch-cpu.txt \
           --extra-index-url https://download.pytorch.org/whl/cpu; \
       fi \
    && pip install -r requirements.txt "$@"

# Then the package itself, without touching the dependencies installed above.
COPY README.md ./
COPY src ./src
RUN pip install --no-deps . && rm -rf build src/*.egg-info

USER fleet
WORKDIR /var/lib/fleet
VOLUME ["/var/lib/fleet"]
ENTRYPOINT ["fleet"]
CMD ["--help"]

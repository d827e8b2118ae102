# Stand-in for python:3.11-slim, built from Debian bookworm's own python3.11 (no registry).
# Built by scripts/build-local-images.sh as sentinel-local/python:3.11-slim.
ARG DEBIAN_IMAGE=sentinel-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
# Extra CA certificates of the host (a TLS-inspecting egress proxy); the directory may be empty.
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
 && update-ca-certificates \
 && ln -s /usr/bin/python3.11 /usr/local/bin/python \
 && ln -s /usr/bin/python3.11 /usr/local/bin/python3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
# pip's vendored certifi does not know the extra CAs: point it at the system bundle.
ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]

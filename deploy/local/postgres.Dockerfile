# Stand-in for the official postgres:15 image: Debian bookworm's PostgreSQL 15 with the same
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB contract and data directory.
# Built by scripts/build-local-images.sh.
ARG DEBIAN_IMAGE=sentinel-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 700 /var/lib/postgresql/data
COPY postgres-run.sh /usr/local/bin/postgres-run.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
CMD ["/usr/local/bin/postgres-run.sh"]

# syntax=docker/dockerfile:1
# tenant-operator's images, from one build of the one binary (the manager and the backup agent's
# commands: backup, restore, verify, backups):
#   docker build -t tenant-operator .                  the operator (the last stage, distroless)
#   docker build --target agent -t tenant-operator-agent .
#                                                       the backup agent, with PostgreSQL's programs
# Both run as the non-root user 65532.

# The builder runs the same command as `make build` (test/chart checks that they agree), so CI
# proves this stage by running `make build`.
FROM golang:1.26 AS builder
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/tenant-operator .

# The backup agent runs pg_dump and pg_restore, and for restore drills initdb and postgres, of the
# tenant database's major version (it looks in /usr/lib/postgresql/<major>/bin). pg_dump must be at
# least as new as the server, and a drill restores into the same major, so the image carries every
# supported major from the PostgreSQL project's Debian repository. Installing makes no cluster (the
# agent starts its own scratch clusters), and uid 65532 gets an /etc/passwd entry, since initdb
# looks its user up; so does 65533, the uid a verification pod's scratch container (the drill's
# restorer) runs as, apart from the agent that holds the keys.
FROM debian:bookworm-slim AS agent
ARG PG_MAJORS="15 16 17 18"
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
      >/etc/apt/sources.list.d/pgdg.list; \
    install -d /etc/postgresql-common/createcluster.d; \
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/agent.conf; \
    apt-get update; \
    for major in $PG_MAJORS; do packages="${packages:-} postgresql-$major"; done; \
    apt-get install -y --no-install-recommends $packages; \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --gid 65532 agent; \
    useradd --uid 65532 --gid 65532 --home-dir /home/agent --create-home --shell /usr/sbin/nologin agent; \
    useradd --uid 65533 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin drill
COPY --from=builder /out/tenant-operator /usr/local/bin/tenant-operator
# The same path as in the operator's image, so that a Job's command works with either image.
RUN ln -s /usr/local/bin/tenant-operator /tenant-operator
ENV HOME=/home/agent
USER 65532:65532
WORKDIR /home/agent
ENTRYPOINT ["/usr/local/bin/tenant-operator"]

# The operator. The default target, so it comes last.
FROM gcr.io/distroless/static:nonroot AS operator
COPY --from=builder /out/tenant-operator /tenant-operator
USER 65532:65532
ENTRYPOINT ["/tenant-operator"]

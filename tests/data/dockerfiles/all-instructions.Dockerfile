FROM --platform=$BUILDPLATFORM busybox:1.36 AS base
MAINTAINER Jane Doe <jane@example.com>
ARG USER=app
ARG UID=1000 GID
ENV HOME=/home/$USER
WORKDIR $HOME
ADD --chown=app:app --chmod=644 --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/file.tar.gz /tmp/
ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.10.1 /buildkit
ADD --link file.tar /
COPY --link --parents --exclude=*.md ./src/**/*.py /app/
COPY ["with space.txt", "/dest dir/"]
RUN --network=none --security=insecure echo hi
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc,required=true npm ci
RUN --mount=type=ssh git clone git@example.com:repo.git
RUN --mount=type=bind,from=base,source=/etc,target=/mnt/etc ls /mnt/etc
RUN --mount=type=tmpfs,target=/tmp,size=64m df /tmp
RUN ["/bin/sh", "-c", "echo exec form"]
USER ${USER}:${GID}
EXPOSE 80 443/tcp 53/udp
VOLUME /data /logs
VOLUME ["/cache", "/var/lib/app"]
STOPSIGNAL SIGTERM
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
HEALTHCHECK NONE
HEALTHCHECK --interval=5m --timeout=3s --start-interval=1s CMD ["curl", "-f", "http://localhost/"]
ONBUILD ADD . /app/src
ONBUILD RUN /usr/local/bin/python-build --dir /app/src
ONBUILD COPY --from=base /x /y
ENTRYPOINT exec top -b
CMD ["-c"]
from scratch
copy --from=base /etc/passwd /etc/passwd

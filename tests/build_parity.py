"""Build parity with dockerd's classic builder: a corpus of real-world-shaped Dockerfiles that run
offline on busybox, and the facts compared for each built image (config, layer count, history,
file tree against the base image, the build's output or error). `scripts/build_parity.py` records
the facts from a real dockerd into tests/data/build_parity/; tests/test_build_parity.py checks
dockyardd against them."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import http.server
import io
import json
import lzma
import os
import re
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "build_parity"
CONFIG_KEYS = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
               "Healthcheck", "StopSignal", "Shell", "OnBuild", "ArgsEscaped")
BASE = "busybox:latest"


@dataclass(frozen=True)
class Case:
    """One Dockerfile with its context; `pre` are (tag, Dockerfile) built first from the same context."""

    name: str
    dockerfile: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    pre: tuple[tuple[str, str], ...] = ()
    note: str = ""
    edit: dict[str, str] = field(default_factory=dict)  # files changed before a third build
    served: dict[str, bytes] = field(default_factory=dict)  # files over loopback HTTP at {url}
    # on stdin: "-" the Dockerfile as the context, "-f -" the Dockerfile beside a context, "tar"/"tar.gz" the context
    stdin: str = ""


def _tar(members: dict[str, str], compress: Callable[[bytes], bytes]) -> bytes:
    """A small archive (directories implied by the paths, fixed owner and mtime), compressed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, text in members.items():
            info = tarfile.TarInfo(name)
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            data = text.encode()
            info.size, info.mode, info.mtime, info.uid, info.gid = len(data), 0o640, 1_600_000_000, 1234, 99
            tar.addfile(info, io.BytesIO(data))
    return compress(buf.getvalue())


_ONBUILD_PARENT = """\
FROM busybox
RUN mkdir /app
ONBUILD COPY app/ /app/src/
ONBUILD RUN ls -R /app > /app/listing
ONBUILD ENV BUILT_FROM=parent
WORKDIR /app
"""
_APP = {"app/main.sh": "#!/bin/sh\necho main\n", "app/lib/util.sh": "util() { :; }\n",
        "app/README.md": "# app\n", "app/config.yml": "a: 1\n"}

CASES: tuple[Case, ...] = (
    Case("multistage_named", """\
FROM busybox AS build
WORKDIR /src
COPY app/ ./
RUN mkdir -p /out && cp main.sh /out/run && chmod 0755 /out/run && echo built > /out/stamp
FROM busybox AS final
COPY --from=build /out/ /opt/app/
COPY --from=build /src/lib /opt/app/lib
CMD ["/opt/app/run"]
""", files=_APP, edit={"app/lib/util.sh": "util() { true; }\n"}),
    Case("multistage_index", """\
FROM busybox
RUN echo one > /one.txt
FROM busybox AS second
RUN echo two > /two.txt
FROM second AS third
COPY --from=0 /one.txt /from-index.txt
COPY --from=second /two.txt /from-name.txt
FROM scratch
COPY --from=2 /from-index.txt /from-name.txt /copied/
COPY --from=busybox /bin/busybox /bin/busybox
""", note="COPY --from an image reference (busybox), FROM scratch"),
    Case("target_middle", """\
FROM busybox AS deps
RUN echo deps > /deps
FROM deps AS test
RUN echo test > /test
FROM deps AS prod
RUN echo prod > /prod
""", args=("--target", "test")),
    Case("arg_env_substitution", """\
ARG BASE=busybox
ARG TAG=latest
FROM ${BASE}:${TAG}
ARG APP_USER=1001
ARG PORT=8080
ARG DIR=/srv/app
ARG SIG=SIGUSR1
ARG unused_default=x
ENV APP_HOME=${DIR} PORT=$PORT
ENV PATH=$APP_HOME/bin:$PATH
ENV GREETING="hello world" EMPTY=
ENV OLD_STYLE value with spaces
WORKDIR $APP_HOME
COPY app/main.sh ${APP_HOME}/bin/
ADD app/config.yml $APP_HOME/etc/${PORT}.yml
LABEL org.example.port=$PORT org.example.home="${APP_HOME}" plain=${MISSING:-fallback} alt=${PORT:+set}
EXPOSE ${PORT} ${PORT}/udp
VOLUME ${DIR}/data
USER ${APP_USER}
STOPSIGNAL $SIG
RUN echo "$GREETING from $APP_HOME on $PORT" > /tmp/greeting
CMD ["sh", "-c", "echo $PORT"]
""", files=_APP, args=("--build-arg", "PORT=9090", "--build-arg", "APP_USER=1002:1003")),
    Case("run_build_args", """\
FROM busybox
ARG VERSION
ARG CHANNEL=stable
ARG HTTP_PROXY
RUN echo "$VERSION/$CHANNEL" > /version
ENV CHANNEL=edge
RUN echo "$CHANNEL" > /channel
ARG VERSION=ignored-default
RUN env | grep -E '^(VERSION|CHANNEL)=' | sort > /seen
""", args=("--build-arg", "VERSION=1.2.3", "--build-arg", "HTTP_PROXY=http://proxy:3128",
           "--build-arg", "NOT_USED=1"), edit={"unrelated.txt": "not in any COPY"},
         note="proxy args stay out of the history; an unconsumed build arg warns"),
    Case("arg_scope", """\
ARG VERSION=1.0
FROM busybox
RUN echo "before:${VERSION:-unset}" > /before
ARG VERSION
RUN echo "after:$VERSION" > /after
FROM busybox
ARG VERSION=2.0
RUN echo "$VERSION" > /other
"""),
    Case("onbuild_parent", _ONBUILD_PARENT, files=_APP),
    Case("onbuild_child", """\
FROM parity/onbuild-parent
RUN cat /app/listing
CMD ["cat", "/app/listing"]
""", files=_APP, pre=(("parity/onbuild-parent", _ONBUILD_PARENT),)),
    Case("user_by_name_and_uid", """\
FROM busybox
RUN echo 'staff2:x:2000:' >> /etc/group && echo 'app:x:2001:2000::/home/app:/bin/sh' >> /etc/passwd \\
    && mkdir -p /home/app && chown app:staff2 /home/app && touch /owned-by-app && chown 2001 /owned-by-app
USER app
RUN touch /home/app/by-name && id > /home/app/id
WORKDIR /home/app/work
RUN touch made-in-workdir
USER 3000:3001
RUN touch /tmp/by-uid-gid
USER app:staff2
WORKDIR /srv/owned
USER root
COPY --chown=app:staff2 app/main.sh /home/app/
COPY --chown=4000 app/README.md /readme-4000
COPY --chown=app app/lib /home/app/lib
FROM busybox
COPY --from=0 /owned-by-app /home/app/ /copied/
""", files=_APP, note="classic WORKDIR creates directories as root; BuildKit as the USER"),
    Case("workdir_chain", """\
FROM busybox
WORKDIR /a
WORKDIR b
WORKDIR ../c/./d
ENV SUB=e
WORKDIR $SUB/
RUN pwd > /pwd && touch here
WORKDIR /
WORKDIR relative
"""),
    Case("copy_semantics", """\
FROM busybox
COPY app /copy-dir
COPY app/ /copy-dir-slash/
COPY app/*.md app/*.yml /docs/
COPY app/lib/util.sh /renamed.sh
COPY app/lib/util.sh /into-dir/
COPY ["app/main.sh", "/json form/"]
COPY app/[mc]*.* /globbed/
COPY nested /nested
COPY exec.sh ro.txt /modes/
COPY link-dir /link-dir
""", files={**_APP, "nested/a/b/c.txt": "deep\n", "nested/a/empty.txt": "", "exec.sh": "#!/bin/sh\n",
            "ro.txt": "read only\n", "link-dir/target.txt": "t\n"},
         modes={"exec.sh": 0o755, "ro.txt": 0o444, "nested/a": 0o700},
         links={"link-dir/link.txt": "target.txt", "link-dir/dangling": "/nowhere"}),
    Case("add_archives", """\
FROM busybox
ADD gz.tar.gz /x/
ADD bz.tar.bz2 /y
ADD xz.tar.xz plain.tgz.txt /z/
ADD plain.txt /plain-added
ADD app/ /added-dir/
ADD --chown=5:6 gz.tar.gz /owned/
""", files={**_APP, "plain.txt": "plain\n", "plain.tgz.txt": "not an archive\n",
            "gz.tar.gz": _tar({"top/": "", "top/a.txt": "a\n", "top/sub/b.txt": "b\n"},
                              lambda b: gzip.compress(b, mtime=0)),
            "bz.tar.bz2": _tar({"c.txt": "c\n"}, bz2.compress),
            "xz.tar.xz": _tar({"d/e.txt": "e\n"}, lzma.compress)},
         note="ADD --chown leaves archive members' owners as they are (extracted archives keep theirs)"),
    Case("add_non_archives", """\
FROM busybox
ADD notar.gz /gz/
ADD blob.bz2 /bz/
COPY gz.tar.gz /copied-not-extracted/
ADD withtar /dir-with-tar/
""", files={"notar.gz": gzip.compress(b"just text, not a tar\n", mtime=0), "blob.bz2": bz2.compress(b"x" * 100),
            "gz.tar.gz": _tar({"a.txt": "a\n"}, lambda b: gzip.compress(b, mtime=0)),
            "withtar/inner.tar": _tar({"i.txt": "i\n"}, bytes)},
         note="ADD extracts only top-level sources that are tar archives (compressed or not)"),
    Case("dockerignore_exceptions", """\
FROM busybox
COPY . /ctx/
RUN find /ctx | sort > /listing
""", files={".dockerignore": "# comment\n*.log\n!keep.log\ntmp/\n**/*.bak\n!important/*.bak\nsecret*\n/root-only.txt\n",
            "a.log": "x", "keep.log": "kept", "tmp/t.txt": "t", "src/x.bak": "b", "important/y.bak": "y",
            "secret.key": "s", "src/root-only.txt": "nested kept", "root-only.txt": "dropped",
            "src/main.c": "int main;\n"}, edit={"a.log": "ignored, changed", "keep.log": "kept, changed"}),
    Case("dockerignore_patterns", """\
FROM busybox
COPY . /ctx/
""", files={".dockerignore": "# docs\n**/*.md\n!README.md\n/build\n*/temp*\ntemp?\ndocs/**\n!docs/keep/**\n  spaced.txt  \n"
            "vendor\n!vendor/allowed.txt\n",
            "README.md": "r", "sub/CHANGES.md": "c", "build/out.o": "o", "sub/build/keep.o": "k",
            "sub/tempfile": "t", "sub/deeper/tempx": "d", "temp1": "t1", "temp12": "t12", "docs/a.txt": "a",
            "docs/keep/b.txt": "b", "spaced.txt": "s", "vendor/allowed.txt": "v", "vendor/other.txt": "o"}),
    Case("volume_then_run", """\
FROM busybox
RUN mkdir -p /data && echo before > /data/before
VOLUME /data
RUN echo after > /data/after && echo outside > /outside
COPY plain.txt /data/copied
VOLUME ["/logs", "/cache"]
RUN touch /logs/run.log
""", files={"plain.txt": "p\n"},
         note="classic builder: RUN after VOLUME writes into an anonymous volume (gone); COPY keeps"),
    Case("volume_owned_by_user", """\
FROM busybox
RUN mkdir /data && echo seed > /data/seed && chown -R 65534:65534 /data
VOLUME /data /fresh
USER 65534
RUN echo from-nobody > /data/x && cat /data/seed && stat -c '%a %u:%g' /data /fresh
""", note="a RUN's volumes are filled from the image with their owners; a new one is root's 0755"),
    Case("shell_changes", """\
FROM busybox
SHELL ["/bin/sh", "-e", "-c"]
RUN echo "shell e" > /shell1
SHELL ["/bin/sh", "-c", "-x"]
RUN echo second > /shell2
ENTRYPOINT echo entry
CMD echo cmd with shell
"""),
    Case("healthchecks", """\
FROM busybox AS with
HEALTHCHECK --interval=5s --timeout=3s --start-period=1m30s --retries=2 CMD wget -q -O- http://localhost/ || exit 1
FROM with AS exec
HEALTHCHECK CMD ["/bin/true", "arg"]
FROM exec AS none
HEALTHCHECK NONE
LABEL stage=none
"""),
    Case("healthcheck_exec_final", """\
FROM busybox
HEALTHCHECK --interval=1m --retries=5 CMD ["sh", "-c", "test -f /ok"]
"""),
    Case("expose_ranges", """\
FROM busybox
ENV WEB=8080
EXPOSE 80 443/tcp 53/udp 8000-8002 9000-9001/udp
EXPOSE $WEB 7000/TCP
"""),
    Case("labels_multiline", """\
FROM busybox
LABEL org.opencontainers.image.title="demo app" \\
      org.opencontainers.image.description="multi \\
line value" \\
      "quoted key"=v1 \\
      escaped=\\$HOME single='single $quoted'
LABEL legacy form value
MAINTAINER Jane Doe <jane@example.com>
"""),
    Case("entrypoint_cmd_forms", """\
FROM busybox AS exec
ENTRYPOINT ["/bin/echo", "hi"]
FROM busybox AS cmd_then_entry
CMD ["arg"]
ENTRYPOINT ["/bin/echo"]
FROM busybox AS shell_forms
CMD echo "shell cmd"
FROM shell_forms AS entry_resets
ENTRYPOINT exec top -b
"""),
    Case("stopsignal_forms", """\
FROM busybox AS name
STOPSIGNAL SIGKILL
FROM busybox
ARG S=9
STOPSIGNAL $S
"""),
    Case("escape_backtick", """\
# escape=`
FROM busybox
WORKDIR /win\\path
RUN echo C:\\Users\\app > backslashes.txt && `
    echo continued >> backslashes.txt
ENV DIR=C:\\data `
    OTHER=two
COPY app\\main.sh /
""", files={**_APP, "app\\main.sh": "backslash name\n"}),
    Case("continuations_and_comments", """\
FROM busybox
RUN echo one \\

    && echo two \\
# a comment inside the continuation
    && echo three > /out \\
      # indented comment
    && echo four >> /out
ENV A=1 \\
    B=2
LABEL x=1 \\
    \\
    y=2
"""),
    Case("symlinks_and_perms", """\
FROM busybox
RUN mkdir -p /opt/real && echo data > /opt/real/file && ln -s real /opt/current \\
    && ln -s /opt/real/file /abs-link && chmod 0640 /opt/real/file && chmod 1777 /opt/real \\
    && rm /bin/vi && mkdir /empty
COPY plain.txt /opt/current/
""", files={"plain.txt": "through the link\n"}, note="COPY to a path under a symlinked directory"),
    Case("onbuild_from_stage", """\
FROM busybox AS Base
ONBUILD RUN echo triggered > /t
ONBUILD LABEL from=trigger
RUN echo base > /base
FROM base AS child
RUN cat /t /base > /both
FROM Base
COPY --from=CHILD /both /copied
""", note="ONBUILD triggers of a stage run when another stage is FROM it; stage names are case-insensitive"),
    Case("env_semantics", """\
FROM busybox
ARG FROM_ARG
ENV A=1 B=$A C=${FROM_ARG:-none}
ENV A=2 D=$A
ENV E="quoted value" F='single $A' G=esc\\$A H=
ENV PATH="/opt/bin:${PATH}"
RUN ["sh", "-c", "echo $A $B $C $D > /env-exec"]
ARG FROM_ARG=late
RUN ["sh", "-c", "echo $FROM_ARG > /exec-with-arg"]
""", args=("--build-arg", "FROM_ARG=given")),
    Case("copy_dest_rules", """\
FROM busybox
WORKDIR /app
COPY . .
COPY app/main.sh rel-name
COPY app/*.md app/*.yml sub/
COPY --chown=7:8 app/lib /deep/new/parents/
COPY empty /empty-dir
ADD ar*.tar /from-glob/
""", files={**_APP, "empty/.keep": "", "ar1.tar": _tar({"one.txt": "1\n"}, bytes),
            ".dockerignore": "Dockerfile\n.dockerignore\nempty/.keep\n"},
         note="Dockerfile and .dockerignore excluded by .dockerignore leave the context"),
    Case("dockerfile_elsewhere", """\
FROM busybox
COPY app/README.md /
""", files={**_APP, "build/Dockerfile.dev": "FROM busybox\nCOPY app/config.yml /dev.yml\nLABEL file=dev\n"},
         args=("-f", "build/Dockerfile.dev")),
    Case("misc_real_world", """\
FROM busybox AS base
ARG NAME="my app"
ARG KEY=org.example.name
LABEL ${KEY}="$NAME" "${KEY}.upper"=${NAME}
STOPSIGNAL SIGRTMIN+3
EXPOSE 9/sctp 8080/tcp
COPY link-to-file /via-link
COPY linkdir/ /linkdir-contents/
SHELL ["/bin/sh", "-o", "pipefail", "-c"]
RUN set -eu; \\
    echo "$NAME" | tr a-z A-Z > /upper; \\
    test -s /upper
FROM base
ENTRYPOINT ["/bin/sh", "-c", "exec \\"$@\\"", "--"]
CMD ["sleep", "1"]
""", files={"target.txt": "t\n", "linkdir/real.txt": "r\n"},
         links={"link-to-file": "target.txt", "linkdir/alias.txt": "real.txt"}),
    Case("fail_target_missing", "FROM busybox AS a\nRUN true\n", args=("--target", "nosuch")),
    Case("fail_bad_port", "FROM busybox\nEXPOSE abc\n"),
    Case("fail_run_in_first_stage", "FROM busybox AS build\nRUN exit 42\nFROM busybox\nCOPY --from=build / /x\n"),
    Case("fail_bad_stage_name", "FROM busybox AS 1abc\nRUN true\n"),
    Case("paths_and_names", """\
FROM busybox
ENV VERSION=1.0 DATA=/srv/data
ARG A=1
ARG B=${A}0
LABEL version=$VERSION b=$B
WORKDIR /app/
COPY ["with space.txt", "./"]
COPY src/./sub /normalized
COPY . /all/
VOLUME ["$DATA", "/logs"]
EXPOSE 80/tcp 80/tcp 443
USER root:root
RUN echo "héllo wörld $B" > /u && cat /u
""", files={"with space.txt": "s\n", "src/sub/f.txt": "f\n", ".env": "SECRET=1\n", ".hidden/x": "x\n"}),
    Case("node_style", """\
FROM busybox
ENV NODE_ENV=production
WORKDIR /usr/src/app
COPY package*.json ./
RUN cat package.json > /dev/null && mkdir node_modules && echo installed > node_modules/.ok
COPY . .
EXPOSE 8080
CMD [ "node", "server.js" ]
""", files={"package.json": "{}\n", "package-lock.json": "{}\n", "server.js": "console.log(1)\n",
            ".dockerignore": "node_modules\nnpm-debug.log\n", "node_modules/dep/index.js": "x\n"},
         edit={"server.js": "console.log(2)\n"}),
    Case("go_style", """\
ARG GO_VERSION=1.22
FROM busybox AS builder
ARG GO_VERSION
ARG TARGETARCH
WORKDIR /src
COPY go.* ./
RUN echo "go$GO_VERSION arch=$TARGETARCH" > /go-version
COPY . .
RUN mkdir -p /out && cp main.go /out/app && chmod 755 /out/app
FROM scratch
COPY --from=builder /out/app /app
COPY --from=builder /go-version /
USER 65534:65534
ENTRYPOINT ["/app"]
""", files={"go.mod": "module x\n", "go.sum": "", "main.go": "package main\n"}, edit={"main.go": "package main // 2\n"},
         note="TARGETARCH: BuildKit's automatic platform ARGs"),
    Case("entrypoint_script", """\
FROM busybox
ENV APP_HOME=/opt/app
COPY docker-entrypoint.sh /usr/local/bin/
RUN chmod +x /usr/local/bin/docker-entrypoint.sh && ln -s usr/local/bin/docker-entrypoint.sh /entrypoint.sh
COPY nginx.conf /etc/nginx/conf.d/default.conf
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD wget -qO- localhost || exit 1
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
""", files={"docker-entrypoint.sh": "#!/bin/sh\nexec \"$@\"\n", "nginx.conf": "server {}\n"}),
    Case("cli_labels", """\
FROM busybox AS base
LABEL from=dockerfile x=0
FROM base
RUN true
""", args=("--label", "x=1", "--label", "a.b=two words", "--label", "lit=$HOME \\n 'q' \"d\"")),
    Case("add_urls", """\
FROM busybox
ADD {url}/config.json /etc/app/
ADD {url}/archive.tar.gz /downloaded/
ADD {url}/script.sh /usr/local/bin/run
RUN ls -ln /etc/app /downloaded /usr/local/bin | awk '{print $1, $3, $4, $9}'
""", served={"config.json": b'{"a": 1}\n', "script.sh": b"#!/bin/sh\necho hi\n",
             "archive.tar.gz": _tar({"in.txt": "x\n"}, lambda b: gzip.compress(b, mtime=0))},
         note="ADD of a URL: 0600, not extracted, named after the URL's path"),
    Case("stdin_dockerfile_only", """\
FROM busybox
RUN echo from-stdin > /f
CMD ["cat", "/f"]
""", stdin="-"),
    Case("stdin_dockerfile_with_context", """\
FROM busybox
COPY . /ctx/
RUN rm /ctx/.dockerignore
""", files={"a.txt": "a\n", ".dockerignore": "b.txt\n", "b.txt": "b\n"}, stdin="-f -",
         note="the docker CLI adds the Dockerfile to the context under a random name, lists it in "
              ".dockerignore (removed: its text varies) and ends the tar without padding or end blocks"),
    Case("stdin_tar_context", """\
FROM busybox
COPY . /ctx/
""", files={"a.txt": "a\n", "dir/b.txt": "b\n", ".dockerignore": "dir/b.txt\n"}, stdin="tar",
         note="a context tar from stdin is taken as it is: .dockerignore is the CLI's business"),
    Case("stdin_tar_gz_context", """\
FROM busybox
COPY a.txt /
""", files={"a.txt": "a\n"}, stdin="tar.gz"),
    Case("lowercase_instructions", """\
from busybox as build
run echo low > /low
from busybox
Workdir /w
copy --from=build /low ./
env A=1
cmd ["sh"]
"""),
    Case("crlf_line_endings", "FROM busybox\r\nRUN echo crlf > /f \\\r\n    && echo more >> /f\r\n"
         "ENV A=1 \\\r\n    B=2\r\nLABEL x=\"y\"\r\nCMD [\"cat\", \"/f\"]\r\n",
         note="a Dockerfile edited on Windows"),
    Case("quiet_and_shm", """\
FROM busybox
RUN df -k /dev/shm | tail -n 1 | awk '{print $2}' > /shm-kb && echo visible-only-without-q
""", args=("-q", "--shm-size", "16m")),
    Case("fail_unused_stage_fails", "FROM busybox AS broken\nRUN exit 5\nFROM busybox\nRUN true\n",
         note="the classic builder runs every stage up to the target; BuildKit would skip `broken`"),
    Case("fail_onbuild_chain", "FROM busybox\nONBUILD ONBUILD RUN true\n"),
    Case("fail_no_wildcard_match", "FROM busybox\nCOPY nomatch*.txt /dst/\n", files={"other.txt": "o"}),
    Case("fail_bad_interval", "FROM busybox\nHEALTHCHECK --interval=soon CMD true\n"),
    Case("fail_unknown_user", "FROM busybox\nUSER nosuchuser\nRUN true\n"),
    Case("fail_multi_source_dest", "FROM busybox\nCOPY a.txt b.txt /dest\n", files={"a.txt": "a", "b.txt": "b"}),
    Case("fail_unknown_instruction", "FROM busybox\nRUN true\nFOO bar\n"),
    Case("fail_missing_copy_source", "FROM busybox\nCOPY missing.txt /\n"),
    Case("fail_run_exit_code", "FROM busybox\nRUN echo start\nRUN echo oops >&2; exit 3\nRUN echo never\n"),
    Case("fail_blank_base", "ARG BASE\nFROM $BASE\nRUN true\n"),
    Case("fail_copy_from_missing_stage_index", "FROM busybox\nCOPY --from=5 /x /x\n"),
)


def materialize(case: Case, root: Path, url: str = "") -> Path:
    """Write the case's context under root ({url} in the Dockerfile made url); returns it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(case.dockerfile.replace("{url}", url))
    for rel, content in case.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    for rel, target in case.links.items():
        (root / rel).symlink_to(target)
    for rel, mode in case.modes.items():
        os.chmod(root / rel, mode)
    return root


_IDS = re.compile(r"\b(sha256:)?([0-9a-f]{64}|[0-9a-f]{12})\b")


def normalize_output(text: str) -> list[str]:
    """Build output lines with image/container IDs, context sizes and version-dependent texts
    made comparable (dockerd 20.10 says `Removing intermediate container`, newer ones
    ` ---> Removed intermediate container`); adjacent red (stderr) pieces joined, as however
    a process's writes happened to be read."""
    lines = []
    for line in text.replace("\r", "").replace("\x1b[0m\x1b[91m", "").splitlines():
        if line.startswith(("Sending build context", "DEPRECATED:", "            ", "            Install",
                            "            BuildKit")) or not line.strip():
            continue
        line = line.replace(" ---> Removed intermediate container", "Removing intermediate container")
        lines.append(_IDS.sub("<id>", line))
    return lines


class Engine:
    """A daemon driven by the docker CLI (classic builder) with a given environment."""

    def __init__(self, env: dict[str, str], cli: tuple[str, ...] = ("docker",)) -> None:
        self.env = {**env, "DOCKER_BUILDKIT": "0"}
        self.cli = cli

    def docker(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker", *args], capture_output=True, env=self.env, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def json(self, *args: str) -> Any:
        proc = self.docker(*args)
        if proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr.decode()}")
        return json.loads(proc.stdout)

    def build(self, ctx: Path, tag: str, args: tuple[str, ...] = (), stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        """`build -t tag ARGS ctx`; with stdin and a directory ctx, `-f -` (the Dockerfile on
        stdin); ctx `-` reads the context (a Dockerfile or a tar) from stdin."""
        where = ["-f", "-", str(ctx)] if stdin and str(ctx) != "-" else [str(ctx)]
        # in the context directory, as users run it: a relative -f is relative to the working directory
        cwd = ctx if ctx.is_dir() else None
        return subprocess.run([*self.cli, "build", "-t", tag, *args, *where], capture_output=True, env=self.env,
                              timeout=300, input=stdin or None, stdin=None if stdin else subprocess.DEVNULL, cwd=cwd)

    def tree(self, image: str) -> dict[str, list[Any]]:
        """The image's merged file tree from `docker save`: path -> [type, mode, uid, gid, data]."""
        with tempfile.TemporaryFile() as out:
            proc = subprocess.run(["docker", "save", image], stdout=out, stderr=subprocess.PIPE, env=self.env,
                                  timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"docker save {image}: {proc.stderr.decode()}")
            out.seek(0)
            with tarfile.open(fileobj=out) as archive:
                manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
                tree: dict[str, list[Any]] = {}
                for layer in manifest[0]["Layers"]:
                    with tarfile.open(fileobj=archive.extractfile(layer)) as tar:  # type: ignore[arg-type]
                        _apply(tree, tar)
        return tree


def _apply(tree: dict[str, list[Any]], tar: tarfile.TarFile) -> None:
    """One layer's entries onto the tree, with OCI whiteouts."""
    for m in tar:
        path = "/" + m.name.strip("/").removeprefix("./")
        parent, _, base = path.rpartition("/")
        if base == ".wh..wh..opq":
            for p in [p for p in tree if p.startswith(parent + "/")]:
                del tree[p]
            continue
        if base.startswith(".wh."):
            gone = f"{parent}/{base[4:]}"
            for p in [p for p in tree if p == gone or p.startswith(gone + "/")]:
                del tree[p]
            continue
        if m.isdir():
            data: Any = None
            kind = "dir"
        elif m.issym():
            kind, data = "symlink", m.linkname
        elif m.islnk():
            target = tree["/" + m.linkname.strip("/")]
            tree[path] = [target[0], m.mode & 0o7777, m.uid, m.gid, target[4]]
            continue
        elif m.isfile():
            kind = "file"
            data = hashlib.sha256(tar.extractfile(m).read()).hexdigest()[:16]  # type: ignore[union-attr]
        else:
            kind, data = "other", m.type.decode()
        tree[path] = [kind, m.mode & 0o7777, m.uid, m.gid, data]


def tree_diff(base: dict[str, list[Any]], tree: dict[str, list[Any]]) -> dict[str, Any]:
    """What an image adds or changes over the base image, and what it removes."""
    changed = {p: f for p, f in sorted(tree.items()) if base.get(p) != f}
    removed = sorted(p for p in base if p not in tree)
    return {"changed": changed, "removed": removed}


@contextlib.contextmanager
def serving(files: dict[str, bytes], root: Path) -> Iterator[str]:
    """files over HTTP on a loopback port (fixed mtimes); the base URL ("" when there are none)."""
    if not files:
        yield ""
        return
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
        os.utime(root / name, (1_600_000_000, 1_600_000_000))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def facts(engine: Engine, case: Case, work: Path, base_tree: dict[str, list[Any]]) -> dict[str, Any]:
    """Build the case on the engine and gather what is compared (the served files' URL as {url})."""
    with serving(case.served, work / f"{case.name}-served") as url:
        doc = _facts(engine, case, work, base_tree, url)
    return json.loads(json.dumps(doc).replace(url, "{url}")) if url else doc


def _facts(engine: Engine, case: Case, work: Path, base_tree: dict[str, list[Any]], url: str) -> dict[str, Any]:
    ctx = materialize(case, work / case.name, url)
    tag = f"parity/{case.name.replace('_', '-')}:latest"
    for pre_tag, dockerfile in case.pre:
        (ctx / "Dockerfile.pre").write_text(dockerfile)
        proc = engine.build(ctx, pre_tag, ("-f", str(ctx / "Dockerfile.pre")))
        if proc.returncode != 0:
            raise RuntimeError(f"{case.name}: pre-build {pre_tag}: {proc.stderr.decode()}")
        (ctx / "Dockerfile.pre").unlink()
    source, dockerfile = _source(case, ctx)
    proc = engine.build(source, tag, case.args, dockerfile)
    out: dict[str, Any] = {"exit_code": proc.returncode, "stdout": normalize_output(proc.stdout.decode()),
                           "stderr": normalize_output(proc.stderr.decode())}
    if proc.returncode != 0:
        return out
    inspect = engine.json("image", "inspect", tag)[0]
    out["config"] = {k: inspect["Config"].get(k) for k in CONFIG_KEYS}
    out["layers"] = len(inspect["RootFS"]["Layers"])
    out["author"] = inspect.get("Author")
    out["has_parent"] = bool(inspect.get("Parent"))  # the previous step's image (IDs differ)
    history = engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}\t{{.Size}}", tag)
    out["history"] = history.stdout.decode().splitlines()
    out["tree"] = tree_diff(base_tree, engine.tree(tag))
    out["rebuild"] = normalize_output(engine.build(source, tag, case.args, dockerfile).stdout.decode())
    if case.edit:
        for rel, content in case.edit.items():
            (ctx / rel).write_text(content)
        out["edited_rebuild"] = normalize_output(engine.build(source, tag, case.args, dockerfile).stdout.decode())
    return out


def _source(case: Case, ctx: Path) -> tuple[Path, bytes]:
    """The context argument and what goes to the CLI's stdin (nothing: ctx/Dockerfile)."""
    if not case.stdin:
        return ctx, b""
    if case.stdin.startswith("tar"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:  # as `tar c` makes it
            for entry in sorted(ctx.rglob("*")):
                tar.add(entry, arcname=str(entry.relative_to(ctx)), recursive=False)
        data = buf.getvalue()
        return Path("-"), gzip.compress(data, mtime=0) if case.stdin == "tar.gz" else data
    (ctx / "Dockerfile").unlink()
    return (Path("-") if case.stdin == "-" else ctx), case.dockerfile.encode()


_HASH = re.compile(r"((?:file|dir|multi):)?[0-9a-f]{64}\b")


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The facts with what is known to differ and accepted made equal: the source hashes of
    COPY/ADD history texts (dockerd's are tarsums of tar headers and contents, ours sha256s of
    the contents), and where dockerd 20.10 and current moby differ (ours are moby's): `parse
    error line N` (`on line N`), `Invalid containerPort`. History sizes are compared."""
    out = json.loads(json.dumps(doc))
    if "history" in out:
        out["history"] = [_HASH.sub(r"\1<hash>", h) for h in out["history"]]
    for key in ("stdout", "stderr", "rebuild", "edited_rebuild"):
        if key in out:
            out[key] = [line.replace("parse error line", "parse error on line").replace(
                "Invalid containerPort", "invalid containerPort") for line in out[key]]
    return out


def compare(expected: dict[str, Any], got: dict[str, Any], path: str = "") -> list[str]:
    """The differences between two fact documents, one line each."""
    if isinstance(expected, dict) and isinstance(got, dict):
        diffs = []
        for key in sorted(set(expected) | set(got), key=str):
            if key not in got:
                diffs.append(f"{path}/{key}: missing (want {json.dumps(expected[key])})")
            elif key not in expected:
                diffs.append(f"{path}/{key}: unexpected {json.dumps(got[key])}")
            else:
                diffs += compare(expected[key], got[key], f"{path}/{key}")
        return diffs
    if isinstance(expected, list) and isinstance(got, list) and path.endswith(("stdout", "stderr", "history",
                                                                              "rebuild")):
        if expected == got:
            return []
        import difflib
        return [f"{path}: {line}" for line in difflib.unified_diff(expected, got, "want", "got", lineterm="", n=1)
                if not line.startswith(("---", "+++"))]
    return [] if expected == got else [f"{path}: want {json.dumps(expected)}, got {json.dumps(got)}"]


def expected(case: Case) -> dict[str, Any]:
    """The facts recorded from dockerd for the case."""
    return json.loads((DATA / f"{case.name}.json").read_text())

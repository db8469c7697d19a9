FROM busybox
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked --mount=type=cache,id=apt-lib,target=/var/lib/apt echo ok
RUN -- --not-a-flag
RUN --quoted="a b" echo x
RUN --empty= echo y
COPY --chown=1:1 -- a b
FOOBAR some args
rUn echo mixed case
Env KEY=value
NOOP
RUN
EXPOSE

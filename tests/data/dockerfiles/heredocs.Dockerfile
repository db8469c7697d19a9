# syntax=docker/dockerfile:1
FROM busybox
RUN <<EOF
set -e
echo "hello $USER" > /greeting
EOF
RUN <<-EOT sh
	echo tabs are chomped
	EOT
COPY <<EOF /etc/app.conf
key=value
path=${HOME}
EOF
COPY <<a.txt <<b.txt /dest/
one
a.txt
two
b.txt
RUN 3<<EOF cat /dev/fd/3
fd three
EOF
RUN python3 <<'PY'
print("quoted: $HOME stays")
PY
RUN cat <<"E1" && cat <<E2
$literal
E1
$expanded
E2
ADD <<EOF /x
added
EOF
ONBUILD RUN <<EOF
echo later
EOF
RUN ["sh", "-c", "echo <<EOF"]
RUN << NOTHEREDOC

ARG V=value
ARG EMPTY=
FROM busybox
ARG V
ARG EMPTY
ENV a=$V b=${V} c=${V:-def} d=${UNSET:-def} e=${V:+alt} f=${UNSET:+alt}
ENV g=${EMPTY-dash} h=${EMPTY:-colon} i=${EMPTY+plus} j=${EMPTY:+cplus}
ENV path=/usr/local/lib/file.tar.gz
ENV k=${path#*/} l=${path##*/} m=${path%.*} n=${path%%.*}
ENV o=${path/lib/LIB} p=${path//l/L} q=${path/#\/usr/X}
ENV escaped=\$V quoted='$V' dquoted="$V"
WORKDIR /${V}/sub
COPY ${V}.txt /dst/$V/
USER ${V:-nobody}
EXPOSE ${PORT:-8080}
LABEL v=${V}
STOPSIGNAL ${SIG:-SIGQUIT}

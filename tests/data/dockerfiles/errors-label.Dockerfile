FROM busybox
LABEL a=b c

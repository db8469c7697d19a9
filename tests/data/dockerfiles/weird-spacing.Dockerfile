   FROM    busybox   AS    Base
	RUN	echo	tabs
RUN echo "unterminated quote is fine for the parser
ENV   A   spaced value  
ENV B="x" \
    C='y z' \
    D=

LABEL   k1=v1     k2="v 2"
ARG    X   Y=2    Z="3 3"
EXPOSE   1/tcp    2/udp
VOLUME   [  "/a"  ,  "/b"  ]
CMD  [  "x"  ]  
ENTRYPOINT [ "a", "b" ] extra
HEALTHCHECK   --retries=1   CMD   [ "c" ]
ONBUILD   LABEL x=y
COPY   [ "a b" , "c" ]
RUN ["unterminated", "json"

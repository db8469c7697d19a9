FROM busybox
RUN echo crlf \
    line
CMD ["sh"]


# leading comment after a blank line
# escape=`
FROM busybox
   # indented comment
RUN echo \
    a # not a comment, part of the command
#comment without space
RUN echo done

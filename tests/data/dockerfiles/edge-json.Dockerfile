FROM busybox
CMD ["echo", "a \"quoted\" word", "\u00e9", "tab\there"]
CMD [ "spaced" , "array" ]
CMD []
CMD ["not", "closed"
CMD [not json]
ENTRYPOINT ["sh"] trailing text
RUN [ "a", "b" ]
SHELL ["cmd", "/S", "/C"]
COPY [ "a", "b", "/c/" ]
VOLUME ["/var/log"]
VOLUME /var/db
RUN ['single', 'quotes']

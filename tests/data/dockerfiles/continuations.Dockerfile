FROM debian:bookworm-slim
# a comment before a continued instruction
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        curl \
# a comment inside a continuation is dropped
        git \

    && rm -rf /var/lib/apt/lists/*
RUN echo one \	
    two \  
    three
ENV A=1 \
    B="two words" \
    C=three\ words
ENV LEGACY value with spaces
LABEL multi.label1="value1" multi.label2="value2" other="value3"
LABEL "com.example.vendor"="ACME Incorporated"
LABEL description="This text illustrates \
that label-values can span multiple lines."
  RUN   echo   indented
	CMD echo tab-indented
RUN echo trailing backslash at end of file \

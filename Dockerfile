# Baton's services and the example job service in one image; the command picks the process:
#   docker build -t baton .
#   docker run --rm baton baton-ingester      (or baton-dispatcher, baton-task-results, baton-dashboard, baton-example-jobs, baton, baton-keys)
# Build stage: the Swift toolchain and librdkafka's headers.
FROM swift:6.3-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends librdkafka-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies first: a change of sources alone keeps this layer.
COPY Package.swift ./
RUN swift package resolve
COPY . .
RUN swift build -c release --static-swift-stdlib \
      --product baton-ingester --product baton-dispatcher --product baton-task-results \
      --product baton-dashboard --product baton-example-jobs --product baton-keys --product baton \
 && mkdir -p /out \
 && for binary in baton-ingester baton-dispatcher baton-task-results baton-dashboard baton-example-jobs baton-keys baton; do \
      cp "$(swift build -c release --show-bin-path)/$binary" /out/; done

# Runtime: Debian slim with librdkafka (real Kafka clusters speak to Debian's 2.0.2; the embedded
# Tansu broker needs >= 2.1, which production does not use) and curl for health checks.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends librdkafka1 ca-certificates curl tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/baton --create-home baton
COPY --from=build /out/ /usr/local/bin/
USER baton
WORKDIR /var/lib/baton
# Listen on every interface inside the container (the default is loopback only).
ENV HTTP_HOST=0.0.0.0 LOG_LEVEL=info
EXPOSE 8080 8081 8082 8083
CMD ["baton-ingester"]

# Signpost: a small static image that runs as a non-root user.
#
#   docker build -t signpost .
#   docker run -p 8080:8080 -v signpost-data:/data \
#     -e SIGNPOST_BASE_URL=http://localhost:8080/fhir signpost
#
# The build stage compiles a static binary (CGO_ENABLED=0: the SQLite driver,
# modernc.org/sqlite, is pure Go) with the time-zone database embedded
# (timetzdata), so the final image needs nothing but the binary, CA
# certificates and a passwd entry for the non-root user, which
# distroless/static provides.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -tags timetzdata -ldflags="-s -w" -o /out/signpost ./cmd/signpost \
 && mkdir /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/signpost /usr/local/bin/signpost
# A named volume mounted on /data starts as a copy of this directory,
# owned by the nonroot user (uid 65532). A bind mount must be writable by
# that uid.
COPY --from=build --chown=65532:65532 /out/data /data
ENV SIGNPOST_ADDR=0.0.0.0:8080 \
    SIGNPOST_DATA=/data
EXPOSE 8080
VOLUME /data
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/signpost"]
CMD ["serve"]

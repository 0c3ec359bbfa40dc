# syntax=docker/dockerfile:1
# tether: one static binary on a distroless base, running as non-root.
# The root filesystem can be read-only: tether writes only under its data
# directory (--data-dir, default /var/lib/tether; mount an emptyDir there).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
      -o /out/tether ./cmd/tether

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tether /usr/local/bin/tether
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tether"]
CMD ["run"]

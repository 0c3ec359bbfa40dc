// Package e2e holds tether's end-to-end tests, which run against real
// processes: a Kubernetes control plane (package cluster), a git server
// (package gitserver) and the tether binary. They are behind the e2e build
// tag, so `go test ./...` runs unit tests only; run them with `make e2e`.
package e2e

//go:build tools

// Package etcd pins the etcd server the e2e control plane is built from.
package etcd

import _ "go.etcd.io/etcd/server/v3"

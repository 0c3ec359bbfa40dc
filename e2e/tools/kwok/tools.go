//go:build tools

// Package kwok pins the kwok command the e2e control plane uses.
package kwok

import _ "sigs.k8s.io/kwok/cmd/kwok"

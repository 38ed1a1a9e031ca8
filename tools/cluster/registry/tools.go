//go:build tools

// Package tools pins go-containerregistry's registry, a local OCI registry
// that Crossplane pulls the function package from in the end-to-end suite.
// build.sh builds it from the Go module proxy; nothing here ships.
package tools

import _ "github.com/google/go-containerregistry/cmd/registry"

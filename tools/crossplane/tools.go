//go:build tools

// Package tools pins the Crossplane CLI (crank) that the tests use for
// `crossplane render` and `crossplane beta validate`, and Crossplane core
// (cmd/crossplane), which the end-to-end suite runs as its control plane.
// Both are built from the Go module proxy (build.sh,
// ../cluster/build.sh); nothing here ships in the product.
package tools

import (
	_ "github.com/crossplane/crossplane/v2/cmd/crank"
	_ "github.com/crossplane/crossplane/v2/cmd/crossplane"
)

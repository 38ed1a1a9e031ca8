//go:build tools

// Package tools pins the Crossplane CLI (crank) that the tests use for
// `crossplane render` and `crossplane beta validate`. It is built from the Go
// module proxy by build.sh; nothing here ships in the product.
package tools

import _ "github.com/crossplane/crossplane/v2/cmd/crank"

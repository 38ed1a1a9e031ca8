//go:build tools

// Package tools pins provider-http, which the end-to-end suite runs on the
// host against the real control plane. build.sh builds it from the Go module
// proxy (`go install pkg@version` is refused: the module's version list
// answers 403); nothing here ships in the product.
package tools

import _ "github.com/crossplane-contrib/provider-http/cmd/provider"

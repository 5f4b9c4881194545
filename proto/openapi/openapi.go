// Package openapi embeds the OpenAPI (Swagger 2.0) documents generated from the
// HTTP annotations of the eventshop services by protoc-gen-openapiv2
// (scripts/proto.sh), so a service can serve its own document.
package openapi

import "embed"

// FS holds every generated document (*.swagger.json) at its root.
//
//go:embed *.swagger.json
var FS embed.FS

// CartSpec is the OpenAPI document of eventshop.cart.v1.CartService
// (cart.swagger.json), served as application/json.
//
//go:embed cart.swagger.json
var CartSpec []byte

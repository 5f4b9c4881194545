// Package migrations embeds the cart database's schema migrations.
package migrations

import (
	"embed"

	"github.com/eventshop/eventshop/pkg/postgres"
)

//go:embed *.sql
var files embed.FS

// Set is the cart service's own migration set.
var Set = postgres.Migrations("cart", files, ".")

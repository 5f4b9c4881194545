// Package migrations embeds the inventory database's schema migrations and its seed
// catalog.
package migrations

import (
	"embed"

	"github.com/eventshop/eventshop/pkg/postgres"
)

//go:embed *.sql
var files embed.FS

// Set is the inventory service's own migration set.
var Set = postgres.Migrations("inventory", files, ".")

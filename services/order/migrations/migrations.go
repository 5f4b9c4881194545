// Package migrations embeds the orders database's schema migrations.
package migrations

import (
	"embed"

	"github.com/eventshop/eventshop/pkg/postgres"
)

//go:embed *.sql
var files embed.FS

// Set is the order service's own migration set.
var Set = postgres.Migrations("order", files, ".")

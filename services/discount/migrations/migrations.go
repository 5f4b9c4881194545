// Package migrations embeds the discount database's schema migrations and its seed rules.
package migrations

import (
	"embed"

	"github.com/eventshop/eventshop/pkg/postgres"
)

//go:embed *.sql
var files embed.FS

// Set is the discount service's own migration set.
var Set = postgres.Migrations("discount", files, ".")

// Package postgres opens PostgreSQL connection pools with sqlx and lib/pq, applies
// embedded migrations and runs functions inside transactions that always end.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Config describes a connection pool. Zero values take the defaults listed on each field.
type Config struct {
	// URL is a lib/pq connection URL, e.g. postgres://postgres@127.0.0.1:15432/cart?sslmode=disable.
	URL string
	// MaxOpenConns bounds the pool (default 20).
	MaxOpenConns int
	// MaxIdleConns bounds idle connections kept open (default MaxOpenConns).
	MaxIdleConns int
	// ConnMaxLifetime recycles connections (default 30 minutes).
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes connections idle for this long (default 5 minutes).
	ConnMaxIdleTime time.Duration
	// PingTimeout bounds the start-up check that the server answers (default 5s).
	PingTimeout time.Duration
	// StatementTimeout is set as the server-side statement_timeout of every connection
	// (default 15s; negative disables it). A statement_timeout parameter in URL wins.
	StatementTimeout time.Duration
	// ApplicationName is the application_name of every connection, which names the pool
	// in pg_stat_activity (default none). An application_name parameter in URL wins.
	ApplicationName string
}

func (c Config) withDefaults() Config {
	if c.MaxOpenConns <= 0 {
		c.MaxOpenConns = 20
	}
	if c.MaxIdleConns <= 0 {
		c.MaxIdleConns = c.MaxOpenConns
	}
	if c.ConnMaxLifetime <= 0 {
		c.ConnMaxLifetime = 30 * time.Minute
	}
	if c.ConnMaxIdleTime <= 0 {
		c.ConnMaxIdleTime = 5 * time.Minute
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 5 * time.Second
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = 15 * time.Second
	}
	return c
}

// Open connects a pool and checks within cfg.PingTimeout that the server answers.
// The caller closes the returned pool.
func Open(ctx context.Context, cfg Config) (*sqlx.DB, error) {
	cfg = cfg.withDefaults()
	dsn, err := withParams(cfg)
	if err != nil {
		return nil, err
	}
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxIdleConns)
	db.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	db.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)

	pingCtx, cancel := context.WithTimeout(ctx, cfg.PingTimeout)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres: %s did not answer within %s: %w", Redact(cfg.URL), cfg.PingTimeout, err)
	}
	return db, nil
}

// withParams adds statement_timeout and application_name as run-time parameters of every
// connection, and lib/pq's binary_parameters.
func withParams(cfg Config) (string, error) {
	raw := cfg.URL
	if raw == "" {
		return "", errors.New("postgres: empty connection URL")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("postgres: connection URL must look like postgres://user@host:port/db?sslmode=disable, got %q", Redact(raw))
	}
	q := u.Query()
	if q.Get("statement_timeout") == "" && cfg.StatementTimeout > 0 {
		q.Set("statement_timeout", fmt.Sprint(cfg.StatementTimeout.Milliseconds()))
	}
	// One round trip per parameterized statement instead of two: lib/pq otherwise prepares
	// each one (Parse, Describe, Sync) before it binds and executes it. []byte arguments
	// then travel in binary format, so JSON for a jsonb column must be passed as a string.
	if q.Get("binary_parameters") == "" {
		q.Set("binary_parameters", "yes")
	}
	if q.Get("application_name") == "" && cfg.ApplicationName != "" {
		q.Set("application_name", cfg.ApplicationName)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Redact returns the URL with any password replaced, for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable postgres URL>"
	}
	return u.Redacted()
}

// MigrationSet is a named, embedded set of goose SQL migrations. Each set keeps its own
// version table (goose_<name>), so shared libraries and a service can each own migrations
// in one database without numbering conflicts.
type MigrationSet struct {
	Name string
	FS   fs.FS
}

// Migrate applies every pending migration of each set, in order. Concurrent callers
// (several replicas starting at once) are serialized by a PostgreSQL advisory lock.
func Migrate(ctx context.Context, db *sqlx.DB, sets ...MigrationSet) error {
	for _, set := range sets {
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("postgres: migrate %s: %w", set.Name, err)
		}
		p, err := goose.NewProvider(goose.DialectPostgres, db.DB, set.FS,
			goose.WithTableName("goose_"+set.Name),
			goose.WithSessionLocker(locker),
		)
		if err != nil {
			return fmt.Errorf("postgres: migrate %s: %w", set.Name, err)
		}
		if _, err := p.Up(ctx); err != nil {
			return fmt.Errorf("postgres: migrate %s: %w", set.Name, err)
		}
	}
	return nil
}

// TxOptions tunes InTx. The zero value is READ COMMITTED with 5 attempts.
type TxOptions struct {
	Isolation   Isolation
	MaxAttempts int
}

// InTx runs fn inside a transaction and commits when fn returns nil. On an error or a
// panic in fn the transaction is rolled back (the panic then continues). Serialization
// failures and deadlocks (SQLSTATE 40001, 40P01) are retried with a short back-off up to
// MaxAttempts times in all, so fn must be safe to run again.
func InTx(ctx context.Context, db *sqlx.DB, opts TxOptions, fn func(tx *sqlx.Tx) error) error {
	attempts := opts.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		err = runTx(ctx, db, opts, fn)
		if err == nil || !IsRetryable(err) || attempt == attempts {
			return err
		}
		backoff := time.Duration(attempt*attempt) * 5 * time.Millisecond
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
	}
	return err
}

func runTx(ctx context.Context, db *sqlx.DB, opts TxOptions, fn func(tx *sqlx.Tx) error) (err error) {
	tx, err := db.BeginTxx(ctx, opts.Isolation.sqlOptions())
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// IsRetryable reports whether err is a serialization failure or a deadlock, which a
// transaction may simply run again.
func IsRetryable(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code == "40001" || pqErr.Code == "40P01"
	}
	return false
}

// IsUniqueViolation reports whether err is a unique-constraint violation (SQLSTATE 23505).
func IsUniqueViolation(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "23505"
}

// IsTimeout reports whether err is a statement the server canceled: one that ran past
// statement_timeout or was canceled on request (SQLSTATE 57014, query_canceled), or a
// lock wait past lock_timeout (55P03). Running it again later may succeed.
func IsTimeout(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && (pqErr.Code == "57014" || pqErr.Code == "55P03")
}

// IsDataException reports whether err is a data exception (SQLSTATE class 22: invalid
// text representation, numeric value out of range, ...): the input itself is wrong, so
// running the same statement again can never succeed.
func IsDataException(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code.Class() == "22"
}

// Migrations returns the set named name read from directory dir of fsys (usually an
// embed.FS of the calling package). It panics when dir is missing: that is a build error.
func Migrations(name string, fsys fs.FS, dir string) MigrationSet {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("postgres: migrations %s: %v", name, err))
	}
	return MigrationSet{Name: name, FS: sub}
}

package postgres

import "database/sql"

// Isolation is a transaction isolation level for TxOptions.
type Isolation int

// Isolation levels for TxOptions.
const (
	ReadCommitted Isolation = iota
	RepeatableRead
	Serializable
)

func (l Isolation) sqlOptions() *sql.TxOptions {
	switch l {
	case RepeatableRead:
		return &sql.TxOptions{Isolation: sql.LevelRepeatableRead}
	case Serializable:
		return &sql.TxOptions{Isolation: sql.LevelSerializable}
	default:
		return &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
}

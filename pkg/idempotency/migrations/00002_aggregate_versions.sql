-- +goose Up
-- The highest aggregate version each consumer applied, per source topic and aggregate,
-- so events older than what was applied are recognised as stale and skipped.
CREATE TABLE aggregate_versions (
    consumer     TEXT   NOT NULL,
    topic        TEXT   NOT NULL,
    aggregate_id TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    PRIMARY KEY (consumer, topic, aggregate_id)
);

-- +goose Down
DROP TABLE aggregate_versions;

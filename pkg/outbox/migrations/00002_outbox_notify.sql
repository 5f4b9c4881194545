-- Relays LISTEN on eventshop_outbox (outbox.NotifyChannel). A statement trigger wakes
-- them when a transaction that enqueued rows commits, without a pg_notify round trip per
-- Enqueue; PostgreSQL delivers one notification per transaction however many statements
-- inserted rows.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eventshop_outbox', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- +goose Down
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();

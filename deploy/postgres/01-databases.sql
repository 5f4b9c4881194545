-- One database per service on the Compose stack's PostgreSQL (run once, by the postgres
-- image's entrypoint, when the data directory is first created). Each service applies its
-- own migrations at start-up.
CREATE DATABASE cart;
CREATE DATABASE inventory;
CREATE DATABASE orders;
CREATE DATABASE discount;

-- Failed attempts (logins, agent enrollments) counted per account and per
-- client address, shared by every replica so that an attacker's budget does
-- not multiply by the replica count. Keys are SHA-256 hashes: no e-mail
-- address or IP address is kept here. Rows unseen for an hour are deleted.
-- Mirrors migrations/sqlite/0007_throttles.sql.

CREATE TABLE throttles (
    key           TEXT PRIMARY KEY,
    failures      BIGINT NOT NULL,
    last_failure  TIMESTAMPTZ NOT NULL,
    blocked_until TIMESTAMPTZ NOT NULL
);
CREATE INDEX throttles_last_failure ON throttles (last_failure);

-- Rejects beyond a device's limit per minute (SHOUWANG_INGEST_REJECT_LIMIT_PER_MINUTE) are
-- counted here instead of stored one by one, so a flood from one device cannot fill the disk.
-- 'who' is the device or gateway uid, or the topic when the topic names none.
CREATE TABLE rejects_counted (
    minute  timestamptz NOT NULL,
    who     text NOT NULL,
    reason  text NOT NULL,
    n       bigint NOT NULL CHECK (n > 0),
    PRIMARY KEY (minute, who, reason)
);

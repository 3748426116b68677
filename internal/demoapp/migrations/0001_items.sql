-- The items table of the demo service. An identity column never hands out a deleted id again,
-- like SQLite's AUTOINCREMENT; timestamps are set by the server so that replicas with skewed
-- clocks still order updates correctly.
CREATE TABLE items (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT NOT NULL,
    note       TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

package sqlite

// schema creates the tables. resources holds one row per logical resource
// (its current version); history holds every version, including the current
// one, in commit order (seq). Index tables hold the search.Entry values of
// each resource's current version, keyed by the resource row (rid); pid
// names the (resource type, parameter) pair through params.
const schema = `
CREATE TABLE IF NOT EXISTS resources (
	rid     INTEGER PRIMARY KEY,
	type    TEXT    NOT NULL,
	id      TEXT    NOT NULL,
	version INTEGER NOT NULL,
	updated INTEGER NOT NULL, -- unix microseconds
	deleted INTEGER NOT NULL,
	seq     INTEGER NOT NULL, -- the history row of the current version
	UNIQUE (type, id)
);
CREATE INDEX IF NOT EXISTS resources_type_updated ON resources (type, deleted, updated, id);

CREATE TABLE IF NOT EXISTS history (
	seq     INTEGER PRIMARY KEY,
	type    TEXT    NOT NULL,
	id      TEXT    NOT NULL,
	version INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	deleted INTEGER NOT NULL,
	body    BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS history_version ON history (type, id, version);
CREATE INDEX IF NOT EXISTS history_type ON history (type, seq);

CREATE TABLE IF NOT EXISTS params (
	pid  INTEGER PRIMARY KEY,
	type TEXT NOT NULL,
	code TEXT NOT NULL,
	UNIQUE (type, code)
);
` + indexSchema + compositeSchema + recordSchema + derivedSchema + outboxSchema + auditQueueSchema

// Package mongo is the MongoDB store: store.Store and its optional
// capabilities on a MongoDB replica set or sharded cluster, written once
// against the driver-shaped interfaces of github.com/256dpi/lungo, so that
// the same code runs on a real deployment (lungo.Connect wraps the
// official driver, go.mongodb.org/mongo-driver) and on lungo's in-process
// engine (lungo.Open), where the tests run.
//
// Schemes: "mongodb://…" and "mongodb+srv://…" (the connection string,
// which carries credentials: give it in SIGNPOST_STORE, never on the
// command line; it is only ever shown through store.Redact), and
// "lungo" (one file in the data directory), "lungo:DIR" (in DIR) or
// "lungo:memory", lungo's embedded engine, for tests and single-process
// trials only.
//
// Layout: resources (the current version of each resource: its JSON
// exactly as given, its index entries in an array that multikey indexes
// cover, and its sort values), versions (every version, for vread and
// history), records, guards, meta, outbox and inbox. Every write runs in
// a real transaction (session.WithTransaction, snapshot read concern,
// majority write concern), which the driver retries on transient errors;
// Update's fn may therefore run more than once.
//
// Isolation: MongoDB transactions are snapshot isolated, so two
// transactions that each check for something and then write different
// documents could both commit. Every search a transaction runs (a
// conditional create's, one Patient per NHS number, UBRN uniqueness, the
// domain's checks) first writes a guard document named by the search, so
// two transactions that make the same check write one document and one of
// them aborts with a write conflict and is retried; record claims
// (idempotency keys), inbox records and versions conflict on their own
// documents. lungo serialises its write transactions, so there the
// guarantee holds trivially; docs/mongodb.md says how to run the race
// tests against a real deployment (SIGNPOST_TEST_MONGODB_URI).
//
// Searches translate the backend-neutral expression (fhir/search) into
// plain find filters with $elemMatch, $or, $nor and ranges, which both
// MongoDB and lungo answer: no $regex (string prefixes are ranges, and
// :contains and :text match ranges over stored suffixes), no aggregation
// (chains, _has and near resolve their inner search first, in the same
// snapshot), no $expr. Paging is keyset paging on the sort values.
package mongo

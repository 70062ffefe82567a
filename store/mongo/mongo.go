package mongo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/256dpi/lungo"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readconcern"
	"go.mongodb.org/mongo-driver/mongo/readpref"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// The collections of a Signpost database.
const (
	colResources = "resources" // the current version of each resource, with its index entries
	colVersions  = "versions"  // every version, for vread and history
	colRecords   = "records"   // store.Records (idempotency keys, attempt counters)
	colGuards    = "guards"    // guard documents that make check-then-write races conflict
	colMeta      = "meta"      // the index version (store.Reindexer)
	colOutbox    = "outbox"    // store.Outbox
	colInbox     = "inbox"     // store.Inbox
)

// guardTTL is how long a guard document outlives its last write: it only
// has to exist while the transactions that write it run.
const guardTTL = time.Hour

// Store is a store.Store on a MongoDB deployment (or lungo's in-process
// engine) reached through lungo's driver-shaped interfaces.
type Store struct {
	client lungo.IClient
	db     lungo.IDatabase
	col    map[string]lungo.ICollection
	close  func() error

	seqMu   sync.Mutex
	lastSeq int64
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.Records    = (*Store)(nil)
	_ store.Deriver    = (*Store)(nil)
	_ store.Reindexer  = (*Store)(nil)
	_ store.Outbox     = (*Store)(nil)
	_ store.Inbox      = (*Store)(nil)
	_ store.Tx         = (*txn)(nil)
	_ store.RecordTx   = (*txn)(nil)
	_ store.DeriverTx  = (*txn)(nil)
	_ store.OutboxTx   = (*txn)(nil)
	_ store.InboxTx    = (*txn)(nil)
	_ store.BulkPutter = (*txn)(nil)
)

// New returns a store on database dbName of client, creating its
// collections' indexes. closeFn, when not nil, is called by Close (to
// disconnect the client or close an in-process engine).
func New(ctx context.Context, client lungo.IClient, dbName string, closeFn func() error) (*Store, error) {
	s := &Store{client: client, db: client.Database(dbName), col: map[string]lungo.ICollection{}, close: closeFn}
	for _, name := range []string{colResources, colVersions, colRecords, colGuards, colMeta, colOutbox, colInbox} {
		s.col[name] = s.db.Collection(name)
	}
	if err := s.createIndexes(ctx); err != nil {
		return nil, fmt.Errorf("mongodb: creating indexes: %w", err)
	}
	return s, nil
}

// Client returns the client the store reaches its deployment through.
func (s *Store) Client() lungo.IClient { return s.client }

// Database returns the name of the store's database.
func (s *Store) Database() string { return s.db.Name() }

// OpenMemory opens a store on a new in-process lungo engine kept in
// memory: for tests.
func OpenMemory(ctx context.Context) (*Store, error) {
	return openLungo(ctx, lungo.NewMemoryStore())
}

func openLungo(ctx context.Context, st lungo.Store) (*Store, error) {
	client, engine, err := lungo.Open(ctx, lungo.Options{Store: st, ExpireInterval: time.Hour})
	if err != nil {
		return nil, err
	}
	s, err := New(ctx, client, "signpost", func() error { engine.Close(); return nil })
	if err != nil {
		engine.Close()
		return nil, err
	}
	return s, nil
}

// createIndexes creates what the store's own reads need: the unique keys
// that make duplicates impossible, the multikey index over the index
// entries, the history order, and TTL indexes on records and guards that
// expire. (lungo keeps unique and TTL indexes; a real MongoDB also uses
// the others to answer queries.)
func (s *Store) createIndexes(ctx context.Context) error {
	idx := map[string][]mongo.IndexModel{
		colResources: {
			{Keys: bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}}, Options: options.Index().SetUnique(true).SetName("type_id")},
			{Keys: bson.D{{Key: "type", Value: 1}, {Key: "del", Value: 1}, {Key: "lu", Value: 1}, {Key: "id", Value: 1}}, Options: options.Index().SetName("type_order")},
			{Keys: bson.D{{Key: "ix.p", Value: 1}, {Key: "ix.v", Value: 1}}, Options: options.Index().SetName("ix_token")},
			{Keys: bson.D{{Key: "ix.p", Value: 1}, {Key: "ix.rt", Value: 1}, {Key: "ix.ri", Value: 1}}, Options: options.Index().SetName("ix_ref")},
			{Keys: bson.D{{Key: "ix.p", Value: 1}, {Key: "ix.lo", Value: 1}}, Options: options.Index().SetName("ix_date")},
			{Keys: bson.D{{Key: "ix.p", Value: 1}, {Key: "ix.t", Value: 1}}, Options: options.Index().SetName("ix_text")},
		},
		colVersions: {
			{Keys: bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}, {Key: "v", Value: 1}}, Options: options.Index().SetUnique(true).SetName("type_id_v")},
			{Keys: bson.D{{Key: "seq", Value: -1}}, Options: options.Index().SetName("seq")},
		},
		colRecords: {
			{Keys: bson.D{{Key: "exp", Value: 1}}, Options: options.Index().SetExpireAfterSeconds(0).SetName("expires")},
		},
		colGuards: {
			{Keys: bson.D{{Key: "at", Value: 1}}, Options: options.Index().SetExpireAfterSeconds(int32(guardTTL / time.Second)).SetName("expires")},
		},
		colOutbox: {
			{Keys: bson.D{{Key: "dest", Value: 1}, {Key: "ctl", Value: 1}}, Options: options.Index().SetUnique(true).SetName("dest_ctl")},
			{Keys: bson.D{{Key: "dest", Value: 1}, {Key: "state", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("dest_state")},
		},
	}
	for name, models := range idx {
		if _, err := s.col[name].Indexes().CreateMany(ctx, models); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// Close closes the store's connection or engine.
func (s *Store) Close() error {
	if s.close != nil {
		return s.close()
	}
	return nil
}

// nextSeq returns the history sequence number of a new version: the
// current time in microseconds, or one more than the last one this
// process gave when the clock has not moved on. Versions written by one
// process are ordered by it exactly; across processes, to within their
// clocks' difference.
func (s *Store) nextSeq() int64 {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	n := time.Now().UnixMicro()
	if n <= s.lastSeq {
		n = s.lastSeq + 1
	}
	s.lastSeq = n
	return n
}

// txnOptions make a transaction read a majority-committed snapshot and
// acknowledge its commit only once a majority has it (lungo ignores
// them: its transactions are serialised).
func txnOptions() *options.TransactionOptions {
	return options.Transaction().
		SetReadConcern(readconcern.Snapshot()).
		SetWriteConcern(writeconcern.Majority()).
		SetReadPreference(readpref.Primary())
}

// Update runs fn in one MongoDB transaction. The driver retries the whole
// transaction (calling fn again) when it fails with a transient error,
// such as the write conflict of two transactions writing one document,
// and retries its commit when the outcome is unknown.
func (s *Store) Update(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	return s.inTxn(ctx, func(sc context.Context) error {
		return fn(sc, &txn{reader: reader{s: s, ctx: sc}})
	})
}

// txKey marks a context inside one of the store's transactions.
type txKey struct{}

// inTxn runs fn in a transaction, fn's ctx carrying its session.
func (s *Store) inTxn(ctx context.Context, fn func(sc context.Context) error) error {
	sess, err := s.client.StartSession()
	if err != nil {
		return classify(ctx, fmt.Errorf("mongodb: %w", err))
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	_, err = sess.WithTransaction(ctx, func(sc lungo.ISessionContext) (any, error) {
		return nil, fn(context.WithValue(sc, txKey{}, true))
	}, txnOptions())
	return classify(ctx, err)
}

// view runs fn on one snapshot: a read-only transaction, or the
// transaction ctx is already in (a read through the Store made inside
// Update sees the transaction, rather than waiting for it to end).
func (s *Store) view(ctx context.Context, fn func(r reader) error) error {
	if in, _ := ctx.Value(txKey{}).(bool); in {
		return fn(reader{s: s, ctx: ctx})
	}
	return s.inTxn(ctx, func(sc context.Context) error { return fn(reader{s: s, ctx: sc}) })
}

// Read implements store.Reader.
func (s *Store) Read(ctx context.Context, typ, id string) (*fhir.Resource, error) {
	res, err := reader{s: s, ctx: ctx}.Read(ctx, typ, id)
	return res, classify(ctx, err)
}

// ReadVersion implements store.Reader.
func (s *Store) ReadVersion(ctx context.Context, typ, id string, version int64) (*fhir.Resource, error) {
	res, err := reader{s: s, ctx: ctx}.ReadVersion(ctx, typ, id, version)
	return res, classify(ctx, err)
}

// History implements store.Reader.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	res, err := reader{s: s, ctx: ctx}.History(ctx, q)
	return res, classify(ctx, err)
}

// Search implements store.Reader: its queries (the page, the count, the
// sub-queries of chains and _has) read one snapshot.
func (s *Store) Search(ctx context.Context, q *search.Query) (*store.Page, error) {
	var page *store.Page
	err := s.view(ctx, func(r reader) error {
		var err error
		page, err = r.Search(r.ctx, q)
		return err
	})
	return page, err
}

// reader answers reads in ctx: a transaction's session, or none.
type reader struct {
	s   *Store
	ctx context.Context
}

func (r reader) c(name string) lungo.ICollection { return r.s.col[name] }

func key(typ, id string) string { return typ + "/" + id }

func notFound(typ, id string) error {
	return fhir.Errorf(fhir.NotFound, "not-found", "", "%s/%s is not known", typ, id)
}

// Read implements store.Reader.
func (r reader) Read(_ context.Context, typ, id string) (*fhir.Resource, error) {
	var d resDoc
	err := r.c(colResources).FindOne(r.ctx, bson.D{{Key: "_id", Value: key(typ, id)}},
		options.FindOne().SetProjection(bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}, {Key: "v", Value: 1},
			{Key: "lu", Value: 1}, {Key: "del", Value: 1}, {Key: "json", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, notFound(typ, id)
	}
	if err != nil {
		return nil, err
	}
	return d.resource()
}

// ReadVersion implements store.Reader.
func (r reader) ReadVersion(_ context.Context, typ, id string, version int64) (*fhir.Resource, error) {
	var d resDoc
	err := r.c(colVersions).FindOne(r.ctx, bson.D{{Key: "type", Value: typ}, {Key: "id", Value: id}, {Key: "v", Value: version}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "", "%s/%s has no version %d", typ, id, version)
	}
	if err != nil {
		return nil, err
	}
	return d.resource()
}

// History implements store.Reader: versions by their sequence, newest
// first; the cursor is the sequence of the last version given.
func (r reader) History(_ context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	f := bson.D{}
	if q.Type != "" {
		f = append(f, bson.E{Key: "type", Value: q.Type})
	}
	if q.ID != "" {
		f = append(f, bson.E{Key: "id", Value: q.ID})
	}
	lu := bson.D{}
	if !q.Since.IsZero() {
		lu = append(lu, bson.E{Key: "$gte", Value: q.Since.UnixMicro()})
	}
	if !q.Before.IsZero() {
		lu = append(lu, bson.E{Key: "$lt", Value: q.Before.UnixMicro()})
	}
	if len(lu) > 0 {
		f = append(f, bson.E{Key: "lu", Value: lu})
	}
	if q.Cursor != "" {
		var seq int64
		if _, err := fmt.Sscan(q.Cursor, &seq); err != nil {
			return nil, fhir.Errorf(fhir.Invalid, "invalid", "_cursor", "the paging cursor is not valid")
		}
		f = append(f, bson.E{Key: "seq", Value: bson.D{{Key: "$lt", Value: seq}}})
	}
	count := q.Count
	if count <= 0 {
		count = 50
	}
	cur, err := r.c(colVersions).Find(r.ctx, f, options.Find().SetSort(bson.D{{Key: "seq", Value: -1}}).SetLimit(int64(count+1)))
	if err != nil {
		return nil, err
	}
	var docs []resDoc
	if err := cur.All(r.ctx, &docs); err != nil {
		return nil, err
	}
	page := &store.HistoryPage{}
	for i, d := range docs {
		if i == count {
			page.Next = fmt.Sprint(docs[i-1].Seq)
			break
		}
		res, _ := d.resource()
		page.Versions = append(page.Versions, res)
	}
	return page, nil
}

// txn is a store.Tx: a reader in the transaction's session that writes.
type txn struct {
	reader
}

// Put implements store.Tx.
func (t *txn) Put(_ context.Context, w *store.Write) error {
	res := w.Resource
	var cur resDoc
	err := t.c(colResources).FindOne(t.ctx, bson.D{{Key: "_id", Value: key(res.Type, res.ID)}},
		options.FindOne().SetProjection(bson.D{{Key: "v", Value: 1}, {Key: "del", Value: 1}, {Key: "dv", Value: 1}})).Decode(&cur)
	exists := err == nil
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return err
	}
	if want := cur.V + 1; res.Version != want {
		return fhir.Errorf(fhir.Conflict, "conflict", "", "%s/%s: version %d is not the next one (current: %d)",
			res.Type, res.ID, res.Version, cur.V)
	}
	seq := t.s.nextSeq()
	d := newResDoc(res, seq)
	if !res.Deleted {
		d.DV = cur.DV
		d.setIndex(w.Index)
	}
	if exists {
		_, err = t.c(colResources).ReplaceOne(t.ctx, bson.D{{Key: "_id", Value: d.Key}}, d)
	} else {
		_, err = t.c(colResources).InsertOne(t.ctx, d)
	}
	if err != nil {
		return dupConflict(err, res.Reference())
	}
	v := versionDoc(d)
	if _, err := t.c(colVersions).InsertOne(t.ctx, v); err != nil {
		return dupConflict(err, res.Reference())
	}
	return nil
}

// PutAll implements store.BulkPutter: one read of the current versions
// and one insert each of the new resources and of the versions, instead
// of two or three round trips per resource. A batch that names one
// resource twice takes one Put each.
func (t *txn) PutAll(ctx context.Context, ws []*store.Write) error {
	keys := make(bson.A, 0, len(ws))
	seen := map[string]bool{}
	for _, w := range ws {
		k := key(w.Resource.Type, w.Resource.ID)
		if seen[k] {
			return t.putEach(ctx, ws)
		}
		seen[k] = true
		keys = append(keys, k)
	}
	if len(ws) == 0 {
		return nil
	}
	cur, err := t.c(colResources).Find(t.ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}},
		options.Find().SetProjection(bson.D{{Key: "v", Value: 1}, {Key: "del", Value: 1}, {Key: "dv", Value: 1}}))
	if err != nil {
		return err
	}
	var docs []resDoc
	if err := cur.All(t.ctx, &docs); err != nil {
		return err
	}
	current := map[string]resDoc{}
	for _, d := range docs {
		current[d.Key] = d
	}
	var inserts, versions []any
	for _, w := range ws {
		res := w.Resource
		cur, exists := current[key(res.Type, res.ID)]
		if res.Version != cur.V+1 {
			return fhir.Errorf(fhir.Conflict, "conflict", "", "%s/%s: version %d is not the next one (current: %d)",
				res.Type, res.ID, res.Version, cur.V)
		}
		d := newResDoc(res, t.s.nextSeq())
		if !res.Deleted {
			d.DV = cur.DV
			d.setIndex(w.Index)
		}
		if exists {
			if _, err := t.c(colResources).ReplaceOne(t.ctx, bson.D{{Key: "_id", Value: d.Key}}, d); err != nil {
				return err
			}
		} else {
			inserts = append(inserts, d)
		}
		versions = append(versions, versionDoc(d))
	}
	if len(inserts) > 0 {
		if _, err := t.c(colResources).InsertMany(t.ctx, inserts); err != nil {
			return dupConflict(err, "a resource of the batch")
		}
	}
	_, err = t.c(colVersions).InsertMany(t.ctx, versions)
	return dupConflict(err, "a version of the batch")
}

func (t *txn) putEach(ctx context.Context, ws []*store.Write) error {
	for _, w := range ws {
		if err := t.Put(ctx, w); err != nil {
			return err
		}
	}
	return nil
}

// dupConflict turns a duplicate key (two writers of one new resource) into
// a conflict.
func dupConflict(err error, what string) error {
	if mongo.IsDuplicateKeyError(err) || lungo.IsUniquenessError(err) {
		return fhir.Errorf(fhir.Conflict, "conflict", "", "%s was written concurrently", what)
	}
	return err
}

// Guard writes the guard document named key in the transaction: two
// transactions that guard one key cannot both commit (on MongoDB the
// second writer gets a write conflict and its transaction is retried).
// Tx.Search guards every search it runs this way.
func (t *txn) Guard(key string) error {
	_, err := t.c(colGuards).UpdateOne(t.ctx, bson.D{{Key: "_id", Value: key}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}, {Key: "$set", Value: bson.D{{Key: "at", Value: time.Now()}}}},
		options.Update().SetUpsert(true))
	return err
}

// Search implements store.Reader in a transaction: the search's guard
// document is written first, so that two transactions that check for the
// same matches before writing conflict (see store.Store.Update).
func (t *txn) Search(ctx context.Context, q *search.Query) (*store.Page, error) {
	if err := t.Guard(guardKey(q)); err != nil {
		return nil, err
	}
	return t.reader.Search(ctx, q)
}

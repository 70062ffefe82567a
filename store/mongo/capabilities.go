package mongo

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// The optional capabilities: records, derived values and reindexing.

// recordDoc is a store record; a TTL index on Exp removes it once expired
// (reads also treat it as absent from then).
type recordDoc struct {
	Key   string    `bson:"_id"` // kind NUL key
	Value []byte    `bson:"val"`
	Exp   time.Time `bson:"exp"`
}

func recordKey(kind, key string) string { return kind + "\x00" + key }

// GetRecord implements store.Records.
func (s *Store) GetRecord(ctx context.Context, kind, key string) ([]byte, error) {
	return reader{s: s, ctx: ctx}.GetRecord(ctx, kind, key)
}

// GetRecord implements store.Records.
func (r reader) GetRecord(_ context.Context, kind, key string) ([]byte, error) {
	var d recordDoc
	err := r.c(colRecords).FindOne(r.ctx, bson.D{{Key: "_id", Value: recordKey(kind, key)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) || (err == nil && !d.Exp.After(time.Now())) {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "", "no %s record %q", kind, key)
	}
	if err != nil {
		return nil, err
	}
	return d.Value, nil
}

// PutRecord implements store.RecordTx. Two transactions claiming one key
// both write its document: on MongoDB one of them aborts with a write
// conflict and, retried, finds the other's record.
func (t *txn) PutRecord(ctx context.Context, kind, key string, value []byte, expires time.Time) error {
	if _, err := t.GetRecord(ctx, kind, key); err == nil {
		return fhir.Errorf(fhir.Conflict, "conflict", "", "a %s record %q exists", kind, key)
	} else if fhir.KindOf(err) != fhir.NotFound {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	d := recordDoc{Key: recordKey(kind, key), Value: value, Exp: expires}
	_, err := t.c(colRecords).ReplaceOne(t.ctx, bson.D{{Key: "_id", Value: d.Key}}, d, options.Replace().SetUpsert(true))
	return err
}

// Derived implements store.Deriver.
func (s *Store) Derived(ctx context.Context, typ string, ids []string) (map[string][]store.DerivedValue, error) {
	return reader{s: s, ctx: ctx}.Derived(ctx, typ, ids)
}

// Derived implements store.Deriver.
func (r reader) Derived(_ context.Context, typ string, ids []string) (map[string][]store.DerivedValue, error) {
	out := map[string][]store.DerivedValue{}
	if len(ids) == 0 {
		return out, nil
	}
	docs, err := r.find(typ, bson.D{{Key: "id", Value: bson.D{{Key: "$in", Value: strIn(ids)}}}, {Key: "dv.0", Value: bson.D{{Key: "$exists", Value: true}}}},
		bson.D{{Key: "id", Value: 1}, {Key: "dv", Value: 1}})
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		for _, v := range d.DV {
			out[d.ID] = append(out[d.ID], store.DerivedValue{Name: v.Name, Value: v.Value, Index: fromEntryDocs(v.Ix)})
		}
		slices.SortFunc(out[d.ID], func(a, b store.DerivedValue) int { return strings.Compare(a.Name, b.Name) })
	}
	return out, nil
}

// PutDerived implements store.DeriverTx.
func (t *txn) PutDerived(_ context.Context, typ, id string, v store.DerivedValue) error {
	var d resDoc
	err := t.c(colResources).FindOne(t.ctx, bson.D{{Key: "_id", Value: key(typ, id)}},
		options.FindOne().SetProjection(bson.D{{Key: "del", Value: 1}, {Key: "ix", Value: 1}, {Key: "dv", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return notFound(typ, id)
	}
	if err != nil {
		return err
	}
	if d.Del {
		return fhir.Errorf(fhir.Gone, "deleted", "", "%s/%s was deleted", typ, id)
	}
	d.DV = slices.DeleteFunc(d.DV, func(x derivedDoc) bool { return x.Name == v.Name })
	if v.Value != nil {
		d.DV = append(d.DV, derivedDoc{Name: v.Name, Value: v.Value, Ix: toEntryDocs(v.Index, v.Name)})
	}
	d.Ix = slices.DeleteFunc(d.Ix, func(e entryDoc) bool { return e.D == v.Name })
	d.reindex()
	_, err = t.c(colResources).UpdateOne(t.ctx, bson.D{{Key: "_id", Value: key(typ, id)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "dv", Value: d.DV}, {Key: "ix", Value: d.Ix}, {Key: "sk", Value: d.SK}}}})
	return err
}

func fromEntryDocs(ds []entryDoc) []search.Entry {
	var out []search.Entry
	for _, d := range ds {
		out = append(out, fromEntryDoc(d))
	}
	return out
}

func fromEntryDoc(d entryDoc) search.Entry {
	e := search.Entry{Param: d.P, Type: search.ParamType(d.Y), System: d.S, Value: d.V, Text: d.T, RefType: d.RT, RefID: d.RI,
		Low: d.Lo, High: d.Hi, NumLow: d.NL, NumHigh: d.NH}
	for _, c := range d.C {
		e.Components = append(e.Components, fromEntryDoc(c))
	}
	return e
}

// metaDoc records the index version: Version when the last Reindex
// completed, Target and After while one is under way (the last resource
// key it finished).
type metaDoc struct {
	Key     string `bson:"_id"`
	Version string `bson:"version"`
	Target  string `bson:"target"`
	After   string `bson:"after"`
}

const metaIndex = "index"

func (s *Store) meta(ctx context.Context) (metaDoc, error) {
	var m metaDoc
	err := s.col[colMeta].FindOne(ctx, bson.D{{Key: "_id", Value: metaIndex}}).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return metaDoc{Key: metaIndex}, nil
	}
	return m, err
}

func (s *Store) setMeta(ctx context.Context, m metaDoc) error {
	_, err := s.col[colMeta].ReplaceOne(ctx, bson.D{{Key: "_id", Value: metaIndex}}, m, options.Replace().SetUpsert(true))
	return err
}

// IndexVersion implements store.Reindexer.
func (s *Store) IndexVersion(ctx context.Context) (string, error) {
	m, err := s.meta(ctx)
	if err != nil || m.Target != "" {
		return "", err
	}
	return m.Version, nil
}

// reindexBatch is how many resources one reindex transaction rewrites.
const reindexBatch = 200

// Reindex implements store.Reindexer: resources in key order, a batch per
// transaction that also records how far it got.
func (s *Store) Reindex(ctx context.Context, version string, extract func(*fhir.Resource) ([]search.Entry, error),
	progress func(done, total int)) error {
	m, err := s.meta(ctx)
	if err != nil {
		return err
	}
	if m.Target != version {
		m = metaDoc{Key: metaIndex, Target: version}
		if err := s.setMeta(ctx, m); err != nil {
			return err
		}
	}
	live := bson.D{{Key: "del", Value: false}}
	total, err := s.col[colResources].CountDocuments(ctx, live)
	if err != nil {
		return err
	}
	doneBefore, err := s.col[colResources].CountDocuments(ctx, and(live, bson.D{{Key: "_id", Value: bson.D{{Key: "$lte", Value: m.After}}}}))
	if err != nil {
		return err
	}
	done := int(doneBefore)
	if progress != nil {
		progress(done, int(total))
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var n int
		var next metaDoc
		err := s.inTxn(ctx, func(sc context.Context) error {
			r := reader{s: s, ctx: sc}
			cur, err := r.c(colResources).Find(sc, and(live, bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: m.After}}}}),
				options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(reindexBatch).
					SetProjection(bson.D{{Key: "sk", Value: 0}}))
			if err != nil {
				return err
			}
			var docs []resDoc
			if err := cur.All(sc, &docs); err != nil {
				return err
			}
			n = len(docs)
			for _, d := range docs {
				res, err := d.resource()
				if err != nil {
					return err
				}
				own, err := extract(res)
				if err != nil {
					return err
				}
				d.Ix = append(toEntryDocs(own, ""), derivedEntries(d.Ix)...)
				d.reindex()
				if _, err := r.c(colResources).UpdateOne(sc, bson.D{{Key: "_id", Value: d.Key}},
					bson.D{{Key: "$set", Value: bson.D{{Key: "ix", Value: d.Ix}, {Key: "sk", Value: d.SK}}}}); err != nil {
					return err
				}
			}
			next = m
			if n > 0 {
				next.After = docs[n-1].Key
			} else {
				next = metaDoc{Key: metaIndex, Version: version}
			}
			if _, err := r.c(colMeta).ReplaceOne(sc, bson.D{{Key: "_id", Value: metaIndex}}, next, options.Replace().SetUpsert(true)); err != nil {
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
		m = next
		if n == 0 {
			return nil
		}
		done += n
		if progress != nil {
			progress(done, int(total))
		}
	}
}

func derivedEntries(ix []entryDoc) []entryDoc {
	var out []entryDoc
	for _, e := range ix {
		if e.D != "" {
			out = append(out, e)
		}
	}
	return out
}

package mongo

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// The Purger capability: a resource's document in resources (its index
// entries and derived values are fields of it) and its documents in
// versions are deleted in one transaction. A write of the same resource
// running beside the purge writes the same document, so one of the two
// aborts with a write conflict and is retried by the driver: the retried
// purge then finds the new version and keeps the resource.

var _ store.Purger = (*Store)(nil)

// PurgeList implements store.Purger: the current resources first, then
// the tombstones, each in (lastUpdated, id) order (the index type_order).
// Versions are ordered by the clock (Store.nextSeq), never reused, so
// nothing is held back.
func (s *Store) PurgeList(ctx context.Context, typ string, before time.Time, cursor string, limit int) ([]*fhir.Resource, string, error) {
	del, lu, id, err := parsePurgeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = store.PurgeBatch
	}
	f := bson.D{{Key: "type", Value: typ}, {Key: "del", Value: del}, {Key: "lu", Value: bson.D{{Key: "$lt", Value: before.UnixMicro()}}},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "lu", Value: bson.D{{Key: "$gt", Value: lu}}}},
			bson.D{{Key: "lu", Value: lu}, {Key: "id", Value: bson.D{{Key: "$gt", Value: id}}}},
		}}}
	var docs []resDoc
	err = s.view(ctx, func(r reader) error {
		cur, err := r.c(colResources).Find(r.ctx, f, options.Find().
			SetSort(bson.D{{Key: "lu", Value: 1}, {Key: "id", Value: 1}}).SetLimit(int64(limit)).
			SetProjection(bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}, {Key: "v", Value: 1},
				{Key: "lu", Value: 1}, {Key: "del", Value: 1}, {Key: "json", Value: 1}}))
		if err != nil {
			return err
		}
		return cur.All(r.ctx, &docs)
	})
	if err != nil {
		return nil, "", classify(ctx, err)
	}
	out := make([]*fhir.Resource, 0, len(docs))
	for i := range docs {
		res, _ := docs[i].resource() // a tombstone comes with fhir.Gone
		out = append(out, res)
	}
	switch {
	case len(docs) == limit:
		last := docs[len(docs)-1]
		return out, purgeCursor(del, last.LU, last.ID), nil
	case !del:
		return out, purgeCursor(true, math.MinInt64, ""), nil
	}
	return out, "", nil
}

func purgeCursor(del bool, lu int64, id string) string {
	d := "0"
	if del {
		d = "1"
	}
	return d + ":" + strconv.FormatInt(lu, 10) + ":" + id
}

func parsePurgeCursor(c string) (del bool, lu int64, id string, err error) {
	if c == "" {
		return false, math.MinInt64, "", nil
	}
	parts := strings.SplitN(c, ":", 3)
	if len(parts) == 3 && (parts[0] == "0" || parts[0] == "1") {
		if lu, err = strconv.ParseInt(parts[1], 10, 64); err == nil {
			return parts[0] == "1", lu, parts[2], nil
		}
	}
	return false, 0, "", fmt.Errorf("mongodb: purge list: the cursor %q is not one PurgeList gave", c)
}

// Purge implements store.Purger in one transaction.
func (s *Store) Purge(ctx context.Context, typ string, refs []store.PurgeRef) (int, error) {
	if len(refs) == 0 {
		return 0, nil
	}
	want := make(map[string]int64, len(refs))
	keys := make(bson.A, 0, len(refs))
	for _, r := range refs {
		want[r.ID] = r.Version
		keys = append(keys, key(typ, r.ID))
	}
	removed := 0
	err := s.inTxn(ctx, func(sc context.Context) error {
		removed = 0
		cur, err := s.col[colResources].Find(sc, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}},
			options.Find().SetProjection(bson.D{{Key: "id", Value: 1}, {Key: "v", Value: 1}}))
		if err != nil {
			return err
		}
		var docs []resDoc
		if err := cur.All(sc, &docs); err != nil {
			return err
		}
		var gone, ids bson.A
		for _, d := range docs {
			if v, ok := want[d.ID]; ok && v == d.V {
				gone = append(gone, d.Key)
				ids = append(ids, d.ID)
			}
		}
		if len(gone) == 0 {
			return nil
		}
		res, err := s.col[colResources].DeleteMany(sc, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: gone}}}})
		if err != nil {
			return err
		}
		if _, err := s.col[colVersions].DeleteMany(sc, bson.D{{Key: "type", Value: typ}, {Key: "id", Value: bson.D{{Key: "$in", Value: ids}}}}); err != nil {
			return err
		}
		removed = int(res.DeletedCount)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return removed, nil
}

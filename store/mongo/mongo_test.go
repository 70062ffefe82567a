package mongo_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"

	"github.com/256dpi/lungo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/signpost-fhir/signpost/fhir/search/synth"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/mongo"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// envURI names a real MongoDB deployment (a replica set) to run the same
// tests against; without it they run on lungo's in-process engine.
const envURI = "SIGNPOST_TEST_MONGODB_URI"

var dbSeq atomic.Int64

// open returns a new, empty store: on the deployment of envURI (a
// database of its own, dropped at the end), or on a fresh lungo engine.
func open(t testing.TB) store.Store {
	t.Helper()
	ctx := context.Background()
	uri := os.Getenv(envURI)
	if uri == "" {
		s, err := mongo.OpenMemory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	client, err := lungo.Connect(ctx, options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(store.Redact(uri), err)
	}
	name := fmt.Sprintf("signpost_test_%d_%d", os.Getpid(), dbSeq.Add(1))
	s, err := mongo.New(ctx, client, name, func() error {
		_ = client.Database(name).Drop(context.Background())
		return client.Disconnect(context.Background())
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	if os.Getenv(envURI) == "" {
		// lungo serves no query from an index: every page of a search
		// filters and sorts all the resources of its type, so the
		// differential data set is a quarter of its size here (the same
		// 400 generated queries; a real deployment gets the full size).
		defer func(c synth.Config) { storetest.DiffConfig = c }(storetest.DiffConfig)
		storetest.DiffConfig.Slots /= 4
		storetest.DiffConfig.Patients /= 4
		storetest.DiffConfig.Appointments /= 4
	}
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

var epoch = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func version(typ, id string, v int64) *fhir.Resource {
	return &fhir.Resource{Type: typ, ID: id, Version: v, LastUpdated: epoch.Add(time.Duration(v) * time.Second),
		JSON: []byte(fmt.Sprintf(`{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"}}`, typ, id, v))}
}

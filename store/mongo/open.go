package mongo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/256dpi/lungo"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"

	"github.com/signpost-fhir/signpost/store"
)

// The schemes of this backend: a MongoDB deployment by its connection
// string, and lungo's embedded engine for tests and trials on one
// process: "lungo" (or "lungo:") keeps its data in the file signpost.bson
// of the data directory, "lungo:DIR" in that of directory DIR, and
// "lungo:memory" in memory only.
const (
	Scheme      = "mongodb"
	SchemeSRV   = "mongodb+srv"
	SchemeLungo = "lungo"
)

// DefaultDatabase is the database used when the URI names none.
const DefaultDatabase = "signpost"

// selectionTimeout bounds how long opening waits for a deployment.
const selectionTimeout = 10 * time.Second

func init() {
	store.Register(Scheme, openURI)
	store.Register(SchemeSRV, openURI)
	store.Register(SchemeLungo, openLungoURI)
}

func openLungoURI(ctx context.Context, cfg store.Config) (store.Store, error) {
	_, dir, _ := strings.Cut(cfg.URI, ":")
	dir = strings.TrimPrefix(dir, "//")
	switch dir {
	case "memory":
		return OpenMemory(ctx)
	case "":
		if cfg.Data == "" {
			return nil, errors.New("lungo: no data directory (give lungo:DIR or lungo:memory)")
		}
		dir = cfg.Data
	}
	return openLungo(ctx, lungo.NewFileStore(filepath.Join(dir, "signpost.bson"), 0o600))
}

// openURI connects to the deployment cfg.URI names, checks that it can
// run transactions (a replica set or a sharded cluster: a standalone
// mongod cannot) and opens the store on the URI's database.
func openURI(ctx context.Context, cfg store.Config) (store.Store, error) {
	db := DefaultDatabase
	if u, err := url.Parse(cfg.URI); err == nil && strings.Trim(u.Path, "/") != "" {
		db = strings.Trim(u.Path, "/")
	}
	opts := options.Client().ApplyURI(cfg.URI)
	if opts.ServerSelectionTimeout == nil {
		opts.SetServerSelectionTimeout(selectionTimeout)
	}
	opts.SetWriteConcern(writeconcern.Majority())
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	client, err := lungo.Connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	disconnect := func() error { return client.Disconnect(context.Background()) }
	if err := client.Ping(ctx, readpref.Primary()); err != nil {
		_ = disconnect()
		return nil, fmt.Errorf("the deployment cannot be reached: %w", err)
	}
	if err := checkTransactions(ctx, client.Database("admin")); err != nil {
		_ = disconnect()
		return nil, err
	}
	return New(ctx, client, db, disconnect)
}

// checkTransactions refuses a deployment without multi-document
// transactions: a standalone mongod (neither a replica set member nor a
// mongos).
func checkTransactions(ctx context.Context, admin lungo.IDatabase) error {
	var hello struct {
		SetName string `bson:"setName"`
		Msg     string `bson:"msg"`
	}
	if err := admin.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return fmt.Errorf("asking the deployment what it is: %w", err)
	}
	if hello.SetName == "" && hello.Msg != "isdbgrid" {
		return errors.New("the deployment is a standalone mongod, which has no transactions: Signpost needs a replica set (one member will do) or a sharded cluster")
	}
	return nil
}

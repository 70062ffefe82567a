package mongo

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/x/mongo/driver/topology"

	"github.com/signpost-fhir/signpost/fhir"
)

// TestClassify: what the deployment caused (a lost connection, no
// primary, a step-down, a shutdown) is answered fhir.Unavailable (503,
// retry later); the request's own failures and the store's own answers
// keep their kind.
func TestClassify(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want fhir.Kind
	}{
		{"primary stepped down", nil, mongo.CommandError{Code: 189, Name: "PrimarySteppedDown"}, fhir.Unavailable},
		{"not writable primary", nil, fmt.Errorf("commit: %w", mongo.CommandError{Code: 10107}), fhir.Unavailable},
		{"interrupted by a replica set change", nil, mongo.CommandError{Code: 11602}, fhir.Unavailable},
		{"shutting down", nil, mongo.CommandError{Code: 91}, fhir.Unavailable},
		{"connection lost", nil, mongo.CommandError{Labels: []string{"NetworkError"}}, fhir.Unavailable},
		{"no primary within the selection timeout", nil, fmt.Errorf("find: %w", topology.ErrServerSelectionTimeout), fhir.Unavailable},
		{"client disconnected", nil, mongo.ErrClientDisconnected, fhir.Unavailable},
		{"transient transaction error after the driver's retries", nil, mongo.CommandError{Code: 112, Labels: []string{"TransientTransactionError"}}, fhir.Unavailable},
		{"commit result unknown", nil, mongo.CommandError{Code: 50, Labels: []string{"UnknownTransactionCommitResult"}}, fhir.Unavailable},
		{"duplicate key", nil, mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000}}}, fhir.Other},
		{"a bad query", nil, mongo.CommandError{Code: 2, Name: "BadValue"}, fhir.Other},
		{"the store's own conflict", nil, fhir.Errorf(fhir.Conflict, "conflict", "", "version conflict"), fhir.Conflict},
		{"not found", nil, fhir.Errorf(fhir.NotFound, "not-found", "", "no such"), fhir.NotFound},
		{"the request's time ran out", cancelled, mongo.CommandError{Labels: []string{"NetworkError"}}, fhir.Other},
		{"anything else", nil, errors.New("boom"), fhir.Other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			got := classify(ctx, tc.err)
			if k := fhir.KindOf(got); k != tc.want {
				t.Errorf("kind %v, want %v (%v)", k, tc.want, got)
			}
			if fe := (*fhir.Error)(nil); tc.want == fhir.Unavailable && (!errors.As(got, &fe) || fe.Err == nil || fe.Err.Error() != tc.err.Error()) {
				t.Errorf("the cause is lost: %v", got)
			}
		})
	}
	if classify(context.Background(), nil) != nil {
		t.Error("nil is not nil")
	}
}

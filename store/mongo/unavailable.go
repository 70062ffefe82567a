package mongo

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/signpost-fhir/signpost/fhir"
)

// Failures of the deployment rather than of the request. The driver
// retries what is safe to retry: a transaction that failed with a
// transient error runs again, an unknown commit result is committed
// again, a read or a single write is retried once. What still fails the
// deployment caused (the connection lost, no primary reachable within the
// server-selection timeout, a primary stepping down or shutting down) is
// answered 503 with Retry-After (fhir.Unavailable), never 500: the client
// may try again once a primary is elected. A write answered so may or may
// not have been applied; an Idempotency-Key makes trying it again safe.

// stateChange are the server error codes of a deployment changing state
// or unreachable: HostUnreachable, HostNotFound, NetworkTimeout,
// ShutdownInProgress, PrimarySteppedDown, SocketException,
// NotWritablePrimary, InterruptedAtShutdown,
// InterruptedDueToReplStateChange, NotPrimaryNoSecondaryOk,
// NotPrimaryOrSecondary.
var stateChange = []int{6, 7, 89, 91, 189, 9001, 10107, 11600, 11602, 13435, 13436}

// classify returns err as fhir.Unavailable when the deployment caused it,
// else as it is. A request that ran out of its own time (ctx done) keeps
// its error: the API answers that itself.
func classify(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || !deploymentFailed(err) {
		return err
	}
	e := fhir.Errorf(fhir.Unavailable, "transient", "", "the database cannot be reached now; try again shortly")
	e.Err = err
	return e
}

// deploymentFailed reports whether err is a failure of the deployment.
func deploymentFailed(err error) bool {
	var fe *fhir.Error
	if errors.As(err, &fe) && fe.Kind != fhir.Other {
		return false // the store's or the domain's own answer
	}
	if errors.Is(err, mongo.ErrClientDisconnected) || mongo.IsNetworkError(err) || mongo.IsTimeout(err) {
		return true
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		for _, code := range stateChange {
			if se.HasErrorCode(code) {
				return true
			}
		}
		return se.HasErrorLabel("TransientTransactionError") || se.HasErrorLabel("UnknownTransactionCommitResult") ||
			se.HasErrorLabel("RetryableWriteError")
	}
	return false
}

package booking

import (
	"context"
	"net/http"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
)

// RecordKind is the store.Records kind of idempotency records.
const RecordKind = write.IdempotencyKind

// rememberWrite records the Appointment version a REST write is producing,
// when the request carries an unused Idempotency-Key (tx.Claim). Writes
// booking makes itself (slots claimed, participant statuses) answer no
// request.
func (b *Service) rememberWrite(ctx context.Context, tx *write.Tx, c *write.Change, own bool) error {
	if tx.Claim() == nil || own {
		return nil
	}
	var version int64
	status := http.StatusCreated
	if c.Old != nil {
		version, status = c.Old.Version, http.StatusOK
	} else if cur, err := tx.Read(ctx, c.Type, c.ID); fhir.KindOf(err) == fhir.Gone {
		version = cur.Version
	}
	if c.New == nil {
		return nil // a delete answers no resource
	}
	return tx.Remember(ctx, tx.Claim(), write.Answer{Status: status, Type: c.Type, ID: c.ID, Version: version + 1})
}

// claimOf is the Idempotency-Key an operation invocation carries, if any.
func claimOf(req *operation.Request) *write.Claim {
	if req.Idempotency == nil {
		return nil
	}
	c := write.Claim(*req.Idempotency)
	return &c
}

package write

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// Idempotency keys: a client that retries a write with the Idempotency-Key
// it sent before gets the first answer again instead of a second write.
// The API decides which requests honour keys, names the verified client
// and replays answers (api/idempotency.go); the write path stores each
// answer in the transaction of the write that produced it, so a key is
// remembered exactly when its write is committed.

// IdempotencyKind is the store.Records kind of idempotency records.
const IdempotencyKind = "idempotency"

// The error codes of idempotency keys (CodeSystem error).
const (
	ErrIdempotencyKeyReuse = "IDEMPOTENCY_KEY_REUSED"      // the key was used for another request
	ErrIdempotencyPending  = "IDEMPOTENCY_KEY_IN_PROGRESS" // another request with the key is being served
)

// Claim is an Idempotency-Key a request carries that no committed write has
// used yet: the write that completes the request records its answer under
// it (Tx.Remember), in the same transaction.
type Claim struct {
	Client  string        // the verified caller, the scope of the key
	Key     string        // the Idempotency-Key as sent
	Request string        // a digest of the request: the same key with another request is refused
	KeepFor time.Duration // how long the answer is remembered
}

// record is the store record's key: a digest of client and key.
func (c *Claim) record() string { return Digest(c.Client, c.Key) }

// Answer is a remembered answer to a request: an operation's body, or the
// resource version a REST write produced.
type Answer struct {
	Request string `json:"hash"` // the Claim's Request
	Status  int    `json:"status"`
	Body    []byte `json:"body,omitempty"`
	Type    string `json:"type,omitempty"`
	ID      string `json:"id,omitempty"`
	Version int64  `json:"version,omitempty"`
}

// Digest hashes parts, each length-prefixed so that no two lists of parts
// share a digest.
func Digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Recall returns the answer remembered for c's client and key; an error of
// kind fhir.NotFound when there is none.
func Recall(ctx context.Context, rs store.Records, c *Claim) (*Answer, error) {
	raw, err := rs.GetRecord(ctx, IdempotencyKind, c.record())
	if err != nil {
		return nil, err
	}
	var a Answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Remember stores a as the answer of the request that made claim c, in
// the transaction; nothing when c is nil or the store keeps no records.
// A key another transaction stored first fails with 409 and
// ErrIdempotencyPending: retried, the request gets that answer.
func (t *Tx) Remember(ctx context.Context, c *Claim, a Answer) error {
	if c == nil {
		return nil
	}
	if t.probe {
		return errPrecheckDone
	}
	rtx, ok := t.Tx.(store.RecordTx)
	if !ok {
		return nil
	}
	a.Request = c.Request
	raw, err := json.Marshal(a)
	if err != nil {
		return err
	}
	err = rtx.PutRecord(ctx, IdempotencyKind, c.record(), raw, t.Now().Add(c.KeepFor))
	if fhir.KindOf(err) == fhir.Conflict {
		return fhir.Errorf(fhir.Conflict, "conflict", "", "another request with this Idempotency-Key is in progress or done; retry to get its answer").
			WithDetails(ErrIdempotencyPending)
	}
	return err
}

package booking

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// RecordKind is the store.Records kind of idempotency records.
const RecordKind = "idempotency"

// maxIdempotentBody bounds the bodies Idempotency reads to hash.
const maxIdempotentBody = 10 << 20

// idempotentPath matches the booking writes that honour Idempotency-Key:
// /fhir/Appointment, /fhir/Appointment/{id}, /fhir/Appointment/$hold,
// /fhir/Appointment/$book and /fhir/Appointment/{id}/$reschedule.
var idempotentPath = regexp.MustCompile(`/Appointment(/[A-Za-z0-9\-.]{1,64})?(/\$reschedule)?$|/Appointment/\$(hold|book)$`)

// ClientFromAuthorization is the default Config.Client: the subject (sub
// claim) of a JWT bearer token, read without verifying it, or "anonymous".
// It is a stand-in until auth verifies tokens: the client scope of a key is
// only as strong as the token check in front of it.
func ClientFromAuthorization(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "anonymous"
	}
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 {
		return "anonymous"
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "anonymous"
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Sub == "" {
		return "anonymous"
	}
	return claims.Sub
}

// claim is an Idempotency-Key a request carries that has not been used
// yet: the write that completes the request records its result under it,
// in the same transaction.
type claim struct {
	key  string // the record key: a hash of client and Idempotency-Key
	hash string // a hash of method, path and body
}

type claimKey struct{}

func claimFrom(ctx context.Context) *claim {
	c, _ := ctx.Value(claimKey{}).(*claim)
	return c
}

// withoutClaim hides the claim from the writes an operation makes; the
// operation records its own result.
func withoutClaim(ctx context.Context) context.Context {
	return context.WithValue(ctx, claimKey{}, (*claim)(nil))
}

// record is the remembered result of a request.
type record struct {
	Hash    string `json:"hash"`
	Status  int    `json:"status"`
	Body    []byte `json:"body,omitempty"` // an operation's answer
	Type    string `json:"type,omitempty"` // or the resource version a REST write produced
	ID      string `json:"id,omitempty"`
	Version int64  `json:"version,omitempty"`
}

// Idempotency wraps the HTTP handler so that booking writes carrying an
// Idempotency-Key act once: the same key from the same client (Config.
// Client) with the same method, path and body gets the original answer
// again (with Idempotent-Replayed: true); with a different request it gets
// 422. Keys are remembered for Config.KeysFor, stored with the booking in
// one transaction; a request that fails records nothing, so it may be
// retried with its key. Two requests racing with one key: one acts, the
// other gets 409 and, retried, the replay.
func (b *Service) Idempotency(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		rs, ok := b.repo.Store().(store.Records)
		if key == "" || !ok || r.Method == http.MethodGet || r.Method == http.MethodDelete || !idempotentPath.MatchString(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxIdempotentBody+1))
		if err != nil || len(body) > maxIdempotentBody {
			next.ServeHTTP(w, r) // the API reports the body's problem
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		c := &claim{key: hashOf(b.cfg.Client(r), key), hash: hashOf(r.Method, r.URL.Path, string(body))}
		raw, err := rs.GetRecord(r.Context(), RecordKind, c.key)
		switch fhir.KindOf(err) {
		case fhir.NotFound:
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimKey{}, c)))
			return
		default:
			if err != nil {
				writeOutcome(w, http.StatusInternalServerError, fhir.Errorf(fhir.Other, "exception", "", "internal server error"))
				return
			}
		}
		var rec record
		if err := json.Unmarshal(raw, &rec); err != nil {
			writeOutcome(w, http.StatusInternalServerError, fhir.Errorf(fhir.Other, "exception", "", "internal server error"))
			return
		}
		if rec.Hash != c.hash {
			writeOutcome(w, http.StatusUnprocessableEntity, fhir.Errorf(fhir.Unprocessable, "business-rule", "",
				"the Idempotency-Key %q was used for a different request; use a new key for a new request", key).WithDetails(ErrIdempotencyKeyReuse))
			return
		}
		w.Header().Set("Idempotent-Replayed", "true")
		if rec.Type == "" {
			w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
			w.WriteHeader(rec.Status)
			w.Write(rec.Body)
			return
		}
		res, err := b.repo.Store().ReadVersion(r.Context(), rec.Type, rec.ID, rec.Version)
		if err != nil {
			writeOutcome(w, http.StatusInternalServerError, fhir.Errorf(fhir.Other, "exception", "", "internal server error"))
			return
		}
		loc := b.cfg.BaseURL + "/" + res.Type + "/" + res.ID + "/_history/" + strconv.FormatInt(res.Version, 10)
		w.Header().Set("ETag", res.ETag())
		w.Header().Set("Location", loc)
		w.Header().Set("Content-Location", loc)
		w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
		w.WriteHeader(rec.Status)
		w.Write(res.JSON)
	})
}

func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeOutcome(w http.ResponseWriter, status int, e *fhir.Error) {
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(fhir.OperationOutcome(e.Issues...))
}

// remember stores rec under the claim in ctx, if any, inside tx.
func (b *Service) remember(ctx context.Context, tx *write.Tx, rec record) error {
	c := claimFrom(ctx)
	if c == nil {
		return nil
	}
	rtx, ok := tx.Tx.(store.RecordTx)
	if !ok {
		return nil
	}
	rec.Hash = c.hash
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	err = rtx.PutRecord(ctx, RecordKind, c.key, raw, tx.Now().Add(b.cfg.KeysFor))
	if fhir.KindOf(err) == fhir.Conflict {
		return fhir.Errorf(fhir.Conflict, "conflict", "", "another request with this Idempotency-Key is in progress or done; retry to get its answer").
			WithDetails(ErrIdempotencyPending)
	}
	return err
}

// rememberWrite records the Appointment version a REST write is producing.
func (b *Service) rememberWrite(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if claimFrom(ctx) == nil || isInternal(ctx) {
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
	return b.remember(ctx, tx, record{Status: status, Type: c.Type, ID: c.ID, Version: version + 1})
}

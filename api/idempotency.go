package api

// Idempotency keys: booking writes that carry an Idempotency-Key act once.
// The middleware runs after authentication, so a key is scoped by the
// verified caller and a request whose token fails never reaches it (401,
// never a replay). The write path stores each answer in the transaction of
// its write (write.Tx.Remember); here it is claimed and replayed.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"regexp"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/store"
)

// idempotentPath matches the booking writes that honour Idempotency-Key:
// /fhir/Appointment, /fhir/Appointment/{id}, /fhir/Appointment/$hold,
// /fhir/Appointment/$book and /fhir/Appointment/{id}/$reschedule.
var idempotentPath = regexp.MustCompile(`/Appointment(/[A-Za-z0-9\-.]{1,64})?(/\$reschedule)?$|/Appointment/\$(hold|book)$`)

// ctxClaim is the gin context key of the request's write.Claim.
const ctxClaim = "signpost.idempotency"

// idempotency makes booking writes carrying an Idempotency-Key act once:
// the same key from the same verified client (clientOf) with the same
// method, path and body gets the original answer again (with
// Idempotent-Replayed: true); with a different request it gets 422 and
// IDEMPOTENCY_KEY_REUSED. Keys are remembered for Config.KeysFor, stored
// with the write in one transaction; a request that fails records nothing,
// so it may be retried with its key. Two requests racing with one key: one
// acts, the other gets 409 and IDEMPOTENCY_KEY_IN_PROGRESS and, retried,
// the replay.
func (s *Server) idempotency(c *gin.Context) {
	r := c.Request
	key := r.Header.Get("Idempotency-Key")
	rs, ok := s.store.(store.Records)
	if key == "" || !ok || r.Method == http.MethodGet || r.Method == http.MethodDelete || !idempotentPath.MatchString(r.URL.Path) {
		c.Next()
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil { // the handler reports the body's problem
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{err}))
		c.Next()
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	claim := &write.Claim{Client: clientOf(c, s.cfg.Security.Open), Key: key, Request: write.Digest(r.Method, r.URL.Path, string(body)), KeepFor: s.cfg.KeysFor}
	ans, err := write.Recall(r.Context(), rs, claim)
	switch {
	case fhir.KindOf(err) == fhir.NotFound:
		c.Set(ctxClaim, claim)
		c.Next()
		return
	case err != nil:
		s.resp.fail(c, err)
		c.Abort()
		return
	case ans.Request != claim.Request:
		c.Abort()
		s.resp.fail(c, fhir.Errorf(fhir.Unprocessable, "business-rule", "",
			"the Idempotency-Key %q was used for a different request; use a new key for a new request", key).WithDetails(write.ErrIdempotencyKeyReuse))
		return
	}
	c.Abort()
	c.Header("Idempotent-Replayed", "true")
	if ans.Type == "" {
		c.Data(ans.Status, fhirJSON+"; charset=utf-8", ans.Body)
		return
	}
	res, err := s.store.ReadVersion(r.Context(), ans.Type, ans.ID, ans.Version)
	if err != nil {
		s.resp.fail(c, err)
		return
	}
	loc := s.cfg.BaseURL + "/" + res.Type + "/" + res.ID + "/_history/" + strconv.FormatInt(res.Version, 10)
	c.Header("ETag", res.ETag())
	c.Header("Location", loc)
	c.Header("Content-Location", loc)
	c.Data(ans.Status, fhirJSON+"; charset=utf-8", res.JSON)
}

// clientOf names the caller whose Idempotency-Keys a request's key is
// among: the verified principal's client id and subject. An open server
// verifies no one; there callers are told apart by the credentials they
// present (the Authorization header, hashed, never read).
func clientOf(c *gin.Context, open bool) string {
	if open {
		sum := sha256.Sum256([]byte(c.GetHeader("Authorization")))
		return "open " + hex.EncodeToString(sum[:])
	}
	if p, ok := auth.FromContext(c.Request.Context()); ok {
		return p.ClientID + " " + p.Subject
	}
	return "anonymous" // a public path: no Appointment write is one
}

// claimOf returns the unused Idempotency-Key the request carries, if any.
func claimOf(c *gin.Context) *write.Claim {
	v, _ := c.Get(ctxClaim)
	cl, _ := v.(*write.Claim)
	return cl
}

// idempotencyOf is claimOf for an operation's invocation.
func idempotencyOf(c *gin.Context) *operation.Idempotency {
	cl := claimOf(c)
	if cl == nil {
		return nil
	}
	i := operation.Idempotency(*cl)
	return &i
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

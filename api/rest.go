package api

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
)

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func newID() string { return write.NewID() }

func contextWithTimeout(c *gin.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(c.Request.Context(), d, errTimeout)
}

// read serves GET /fhir/:type/:id.
func (s *Server) read(c *gin.Context, typ, id string) error {
	if s.cfg.readOnly(typ) {
		return s.readDefinition(c, typ, id)
	}
	if err := s.sec.AuthorizeInstance(c.Request.Context(), s.store, typ, id, auth.Read); err != nil {
		return err
	}
	res, err := s.store.Read(c.Request.Context(), typ, id)
	if fhir.KindOf(err) == fhir.Gone {
		versionHeaders(c, res)
	}
	if err != nil {
		return err
	}
	if err := s.served(c.Request.Context(), s.store, true, res); err != nil {
		return err
	}
	return s.serveVersion(c, res)
}

// vread serves GET /fhir/:type/:id/_history/:vid.
func (s *Server) vread(c *gin.Context) error {
	typ, id := c.Param("type"), c.Param("id")
	if err := s.cfg.checkType(typ); err != nil {
		return err
	}
	v, err := strconv.ParseInt(c.Param("vid"), 10, 64)
	if err != nil || v < 1 {
		return fhir.Errorf(fhir.NotFound, "not-found", "", "%q is not a version of %s/%s", c.Param("vid"), typ, id)
	}
	if err := s.sec.AuthorizeInstance(c.Request.Context(), s.store, typ, id, auth.Read); err != nil {
		return err
	}
	res, err := s.store.ReadVersion(c.Request.Context(), typ, id, v)
	if err != nil {
		return err
	}
	if err := s.served(c.Request.Context(), s.store, false, res); err != nil {
		return err
	}
	return s.serveVersion(c, res)
}

// serveVersion answers a read, honouring If-None-Match and If-Modified-Since.
func (s *Server) serveVersion(c *gin.Context, res *fhir.Resource) error {
	versionHeaders(c, res)
	if inm := c.GetHeader("If-None-Match"); inm != "" {
		for _, tag := range strings.Split(inm, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || tag == res.ETag() || tag == `"`+itoa(res.Version)+`"` {
				c.Status(http.StatusNotModified)
				return nil
			}
		}
	} else if ims := c.GetHeader("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !res.LastUpdated.Truncate(time.Second).After(t) {
			c.Status(http.StatusNotModified)
			return nil
		}
	}
	if res.Type == "Binary" && wantsNative(c) {
		return serveBinary(c, res)
	}
	writeJSON(c, http.StatusOK, res.JSON)
	return nil
}

// ifMatch parses If-Match: W/"n", "n" or n. It returns 0 when absent.
func ifMatch(c *gin.Context) (int64, error) {
	h := c.GetHeader("If-Match")
	if h == "" {
		return 0, nil
	}
	v := strings.Trim(strings.TrimPrefix(strings.TrimSpace(h), "W/"), `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, fhir.Errorf(fhir.Invalid, "invalid", "", "If-Match %q is not a version ETag such as W/\"3\"", h)
	}
	return n, nil
}

// parseResource reads and validates a request body as a resource of typ.
func (s *Server) parseResource(c *gin.Context, typ string) (*fhir.Object, error) {
	if typ == "Binary" && isNativeBinary(c) {
		return binaryFromRequest(c)
	}
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	return s.checkResource(c.Request.Context(), body, typ, "")
}

// checkResource parses and validates raw as a resource of typ, after the
// repo's Prepare steps have filled the server-owned elements validation
// needs. where prefixes issue locations (e.g. "Bundle.entry[2].resource").
func (s *Server) checkResource(ctx context.Context, raw []byte, typ, where string) (*fhir.Object, error) {
	if err := checkUTF8(raw, "the resource"); err != nil {
		return nil, relocate(err, where)
	}
	obj, err := fhir.ParseObject(raw)
	if err != nil {
		if where == "" {
			where = typ // locations in the body are relative to the resource
		}
		return nil, relocate(err, where)
	}
	rt, _ := obj.String("resourceType")
	if typ != "" && rt != typ {
		if rt == "" {
			return nil, relocate(fhir.Errorf(fhir.Invalid, "required", "resourceType", "resourceType is missing; expected %q", typ), where)
		}
		return nil, relocate(fhir.Errorf(fhir.Invalid, "invalid", "resourceType", "resourceType %q does not match the endpoint's type %q", rt, typ), where)
	}
	if changed, err := s.repo.Prepare(ctx, rt, obj); err != nil {
		return nil, relocate(err, where)
	} else if changed {
		raw = obj.Bytes()
	}
	if issues := s.validator.Validate(raw); hasErrors(issues) {
		return nil, relocate(&fhir.Error{Kind: fhir.Invalid, Issues: issues}, where)
	}
	return obj, nil
}

func hasErrors(issues []fhir.Issue) bool {
	for _, is := range issues {
		if is.Severity == "" || is.Severity == "error" || is.Severity == "fatal" {
			return true
		}
	}
	return false
}

// relocate prefixes every issue location of err with where.
func relocate(err error, where string) error {
	if where == "" {
		return err
	}
	e := fhir.AsError(err)
	out := &fhir.Error{Kind: e.Kind, Op: e.Op, Err: e.Err}
	for _, is := range e.Issues {
		is.Expression = append([]string(nil), is.Expression...)
		if len(is.Expression) == 0 {
			is.Expression = []string{where}
		}
		for i, x := range is.Expression {
			if !strings.HasPrefix(x, where) {
				if _, rest, ok := strings.Cut(x, "."); ok && x[0] >= 'A' && x[0] <= 'Z' {
					x = rest
				} else if x[0] >= 'A' && x[0] <= 'Z' {
					x = ""
				}
				is.Expression[i] = strings.TrimSuffix(where+"."+x, ".")
			}
		}
		out.Issues = append(out.Issues, is)
	}
	return out
}

// create serves POST /fhir/:type.
func (s *Server) create(c *gin.Context, typ string) error {
	if err := s.cfg.mustWrite(typ); err != nil {
		return err
	}
	obj, err := s.parseResource(c, typ)
	if err != nil {
		return err
	}
	cond := c.GetHeader("If-None-Exist")
	var res *fhir.Resource
	var wtx *write.Tx // the attempt that committed
	status := http.StatusCreated
	// A create is prechecked on the committed state (write.Path.Precheck:
	// a booking of a slot already taken is refused without the store's
	// writer), unless it is conditional: its search is the transaction's.
	opts := write.TxOptions{Claim: claimOf(c), Precheck: cond == ""}
	err = s.repo.UpdateWith(c.Request.Context(), opts, func(ctx context.Context, tx *write.Tx) error {
		wtx = tx
		if cond != "" {
			existing, err := s.conditionalMatch(ctx, tx, typ, cond)
			if err != nil {
				return err
			}
			if existing != nil {
				res, status = existing, http.StatusOK
				return nil
			}
		}
		res, err = tx.Create(ctx, typ, obj)
		return err
	})
	if err != nil {
		return err
	}
	s.writeResource(c, status, wtx.Latest(res))
	return nil
}

// update serves PUT /fhir/:type/:id, creating the resource with the
// client's id when it does not exist.
func (s *Server) update(c *gin.Context, typ, id string) error {
	if err := s.cfg.mustWrite(typ); err != nil {
		return err
	}
	if !fhir.ValidID(id) {
		return fhir.Errorf(fhir.Invalid, "invalid", "", "%q is not a valid resource id", id)
	}
	match, err := ifMatch(c)
	if err != nil {
		return err
	}
	obj, err := s.parseResource(c, typ)
	if err != nil {
		return err
	}
	if typ == "Binary" && isNativeBinary(c) {
		obj.SetAfter("resourceType", "id", id) // native content carries no id: the URL's is meant
	}
	if err := checkBodyID(obj, id, true); err != nil {
		return err
	}
	var res *fhir.Resource
	var created bool
	var wtx *write.Tx // the attempt that committed
	err = s.repo.UpdateWith(c.Request.Context(), write.TxOptions{Claim: claimOf(c)}, func(ctx context.Context, tx *write.Tx) error {
		wtx = tx
		res, created, err = tx.Put(ctx, typ, id, obj, match)
		return err
	})
	if err != nil {
		return err
	}
	s.writeResource(c, statusFor(created), wtx.Latest(res))
	return nil
}

func statusFor(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

// checkBodyID requires the body's id to equal the URL's (required: the
// body must carry one, as FHIR asks of an update).
func checkBodyID(obj *fhir.Object, id string, required bool) error {
	bodyID, ok := obj.String("id")
	rt, _ := obj.String("resourceType")
	at := rt + ".id" // the type has been checked by now
	switch {
	case !ok && obj.Has("id"):
		return fhir.Errorf(fhir.Invalid, "invalid", at, "id must be a string")
	case !ok && required:
		return fhir.Errorf(fhir.Invalid, "required", at, "the resource has no id; an update must carry the id %q of its URL", id)
	case ok && bodyID != id:
		return fhir.Errorf(fhir.Invalid, "invalid", at, "the resource's id %q differs from the URL's id %q", bodyID, id)
	}
	return nil
}

// delete serves DELETE /fhir/:type/:id.
func (s *Server) delete(c *gin.Context, typ, id string) error {
	if err := s.cfg.mustWrite(typ); err != nil {
		return err
	}
	match, err := ifMatch(c)
	if err != nil {
		return err
	}
	var res *fhir.Resource
	err = s.repo.Update(c.Request.Context(), func(ctx context.Context, tx *write.Tx) error {
		res, err = tx.Delete(ctx, typ, id, match)
		return err
	})
	if err != nil {
		return err
	}
	if res != nil {
		c.Header("ETag", res.ETag())
	}
	c.Status(http.StatusNoContent)
	return nil
}

// mustWrite refuses a write to a type the server serves read-only.
func (cfg *Config) mustWrite(typ string) error {
	if cfg.writable(typ) {
		return nil
	}
	return fhir.Errorf(fhir.NotSupported, "not-supported", "", "%s resources are read-only on this server", typ)
}

// Binary: FHIR JSON or the native content.

func isNativeBinary(c *gin.Context) bool {
	ct := c.GetHeader("Content-Type")
	mt, _, _ := mimeType(ct)
	return ct != "" && !isJSONType(mt)
}

func wantsNative(c *gin.Context) bool {
	if c.Query("_format") != "" {
		return false
	}
	accept := c.GetHeader("Accept")
	return accept != "" && !strings.Contains(accept, "json") && !strings.Contains(accept, "*/*")
}

func binaryFromRequest(c *gin.Context) (*fhir.Object, error) {
	data, err := readRaw(c)
	if err != nil {
		return nil, err
	}
	obj, _ := fhir.ParseObject([]byte(`{"resourceType":"Binary"}`))
	mt, _, _ := mimeType(c.GetHeader("Content-Type"))
	obj.Set("contentType", mt)
	obj.Set("data", base64.StdEncoding.EncodeToString(data))
	return obj, nil
}

func serveBinary(c *gin.Context, res *fhir.Resource) error {
	obj, err := fhir.ParseObject(res.JSON)
	if err != nil {
		return err
	}
	ct, _ := obj.String("contentType")
	data64, _ := obj.String("data")
	data, err := base64.StdEncoding.DecodeString(data64)
	if err != nil {
		return err
	}
	c.Data(http.StatusOK, ct, data)
	return nil
}

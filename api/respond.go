package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/fhir"
)

const fhirJSON = "application/fhir+json"

// statusOf maps an error kind to its HTTP status.
var statusOf = map[fhir.Kind]int{
	fhir.Other:              http.StatusInternalServerError,
	fhir.Invalid:            http.StatusBadRequest,
	fhir.Unprocessable:      http.StatusUnprocessableEntity,
	fhir.NotFound:           http.StatusNotFound,
	fhir.Gone:               http.StatusGone,
	fhir.Conflict:           http.StatusConflict,
	fhir.PreconditionFailed: http.StatusPreconditionFailed,
	fhir.Forbidden:          http.StatusForbidden,
	fhir.Unauthorized:       http.StatusUnauthorized,
	fhir.NotAcceptable:      http.StatusNotAcceptable,
	fhir.UnsupportedMedia:   http.StatusUnsupportedMediaType,
	fhir.TooLarge:           http.StatusRequestEntityTooLarge,
	fhir.TooManyRequests:    http.StatusTooManyRequests,
	fhir.NotSupported:       http.StatusMethodNotAllowed,
	fhir.BadGateway:         http.StatusBadGateway,
	fhir.GatewayTimeout:     http.StatusGatewayTimeout,
	fhir.Unavailable:        http.StatusServiceUnavailable,
}

// StatusOf returns the HTTP status for err.
func StatusOf(err error) int { return statusOf[fhir.KindOf(err)] }

// responder answers what the handlers do not answer themselves: it turns
// errors into OperationOutcomes (the one place that does) and runs the
// generic middleware around every request (logging, panics, the body
// limit, content negotiation, the deadline).
type responder struct {
	cfg *Config
	log *slog.Logger
}

// fail writes err as an OperationOutcome. Internal errors are logged with
// the request id and answered without their details.
func (rs responder) fail(c *gin.Context, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = fhir.Errorf(fhir.TooLarge, "too-costly", "", "the request body exceeds %d bytes", mbe.Limit)
	}
	if errors.Is(err, errTimeout) {
		err = fhir.Errorf(fhir.Other, "timeout", "", "the request took too long")
	}
	e := fhir.AsError(err)
	status := statusOf[e.Kind]
	if status >= 500 {
		rs.log.ErrorContext(c.Request.Context(), "request failed", "request_id", c.GetString(ctxRequestID), "error", err)
	}
	if e.Kind == fhir.Unauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="signpost"`)
	}
	if e.Kind == fhir.Unavailable && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", "5")
	}
	writeJSON(c, status, fhir.OperationOutcome(e.Issues...))
}

// writeJSON writes a FHIR JSON body, indented when _pretty=true.
func writeJSON(c *gin.Context, status int, body []byte) {
	if c.Query("_pretty") == "true" {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = buf.Bytes()
		}
	}
	c.Data(status, fhirJSON+"; charset=utf-8", body)
}

// negotiate checks that the client accepts FHIR JSON, from _format or
// Accept. Binary callers may ask for the native content type instead.
func negotiate(c *gin.Context) error {
	if f := c.Query("_format"); f != "" {
		switch f {
		case "json", fhirJSON, "application/json", "application/json+fhir":
			return nil
		}
		return fhir.Errorf(fhir.NotAcceptable, "not-supported", "_format", "_format %q is not supported: this server speaks FHIR JSON only (json, %s)", f, fhirJSON)
	}
	accept := c.GetHeader("Accept")
	if accept == "" {
		return nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case fhirJSON, "application/json", "application/json+fhir", "*/*", "application/*", "text/json":
			return nil
		}
	}
	return fhir.Errorf(fhir.NotAcceptable, "not-supported", "", "cannot answer in %q: this server speaks FHIR JSON only (%s)", accept, fhirJSON)
}

// readBody reads a FHIR JSON request body, checking its content type (a
// body without one is refused like a wrong one) and its encoding (UTF-8).
func readBody(c *gin.Context) ([]byte, error) {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		if err := checkBodyType(c, nil, fhirJSON, isJSONType); err != nil {
			return nil, err
		}
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, fhir.Errorf(fhir.Invalid, "structure", "", "reading the request body: %v", err)
	}
	if err := checkBodyType(c, body, fhirJSON, isJSONType); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fhir.Errorf(fhir.Invalid, "required", "", "the request body is empty")
	}
	if err := checkUTF8(body, "the request body"); err != nil {
		return nil, err
	}
	return body, nil
}

func isJSONType(mt string) bool {
	switch mt {
	case fhirJSON, "application/json", "application/json+fhir", "text/json":
		return true
	}
	return false
}

// prefer returns the return= preference: minimal, representation or
// OperationOutcome ("" when absent).
func prefer(c *gin.Context, key string) string {
	for _, h := range c.Request.Header.Values("Prefer") {
		for _, part := range strings.Split(h, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			if strings.EqualFold(k, key) {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}

// writeResource answers a write with the headers FHIR asks for and the body
// Prefer: return= selects.
func (s *Server) writeResource(c *gin.Context, status int, res *fhir.Resource, issues ...fhir.Issue) {
	// The version written is the current one: it shows the current derived
	// values (or, should they not be read, none).
	if err := s.served(c.Request.Context(), s.store, true, res); err != nil {
		s.log.ErrorContext(c.Request.Context(), "reading derived values", "request_id", c.GetString(ctxRequestID), "error", err)
		_ = s.served(c.Request.Context(), nil, false, res)
	}
	versionHeaders(c, res)
	c.Header("Location", s.cfg.BaseURL+"/"+res.Type+"/"+res.ID+"/_history/"+itoa(res.Version))
	c.Header("Content-Location", s.cfg.BaseURL+"/"+res.Type+"/"+res.ID+"/_history/"+itoa(res.Version))
	switch prefer(c, "return") {
	case "minimal":
		c.Status(status)
	case "OperationOutcome":
		writeJSON(c, status, fhir.OperationOutcome(issues...))
	default:
		writeJSON(c, status, res.JSON)
	}
}

func versionHeaders(c *gin.Context, res *fhir.Resource) {
	c.Header("ETag", res.ETag())
	c.Header("Last-Modified", res.LastUpdated.UTC().Format(http.TimeFormat))
}

// Middleware.

const ctxRequestID = "signpost.request_id"

var errTimeout = errors.New("request timed out")

func requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if id == "" || len(id) > 128 {
		id = newID()
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-Id", id)
	c.Next()
}

func (rs responder) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	level := slog.LevelInfo
	if c.Writer.Status() >= 500 {
		level = slog.LevelError
	}
	rs.log.Log(c.Request.Context(), level, "request", "request_id", c.GetString(ctxRequestID),
		"method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status(),
		"duration_ms", float64(time.Since(start).Microseconds())/1000)
}

func (rs responder) recover(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			rs.log.Error("panic", "request_id", c.GetString(ctxRequestID), "panic", p)
			if !c.Writer.Written() {
				rs.fail(c, fhir.Errorf(fhir.Other, "exception", "", "internal server error"))
			}
			c.Abort()
		}
	}()
	c.Next()
}

func (rs responder) limits(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, rs.cfg.MaxBodyBytes)
	if c.Request.ContentLength > rs.cfg.MaxBodyBytes {
		rs.fail(c, fhir.Errorf(fhir.TooLarge, "too-costly", "", "the request body exceeds %d bytes", rs.cfg.MaxBodyBytes))
		c.Abort()
		return
	}
	if err := negotiate(c); err != nil && !rs.cfg.Security.exemptFromNegotiation(c.Request.URL.Path) &&
		sites(rs.cfg.Sites).at(c.Request.URL.Path) == nil {
		rs.fail(c, err)
		c.Abort()
		return
	}
	ctx, cancel := contextWithTimeout(c, rs.cfg.Timeout)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

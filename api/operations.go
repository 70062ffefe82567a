package api

import (
	"context"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
)

// Operation is re-exported for callers wiring the server.
type Operation = operation.Operation

// operations are the registered operations, by name.
type operations map[string]*Operation

// AddOperation registers op. Call it before Handler.
func (s *Server) AddOperation(op *Operation) {
	s.ops[op.Name] = op
}

// operationAt returns the operation name invoked on typ/id (system level
// when both are empty, type level when id is), and whether it is
// registered there; level names where, for messages.
func (ops operations) at(typ, id, name string) (op *Operation, level string, ok bool) {
	op, ok = ops[name]
	level = "system"
	switch {
	case id != "":
		level = "instance"
		ok = ok && op.Instance && slices.Contains(op.Types, typ)
	case typ != "":
		level = "type"
		ok = ok && op.TypeLevel && slices.Contains(op.Types, typ)
	default:
		ok = ok && (len(op.Types) == 0 || op.System)
	}
	return op, level, ok
}

// operation serves /fhir/$name, /fhir/:type/$name and /fhir/:type/:id/$name.
func (s *Server) operation(c *gin.Context, typ, id, name string) error {
	op, level, ok := s.ops.at(typ, id, name)
	if !ok {
		return fhir.Errorf(fhir.NotFound, "not-supported", "", "operation $%s is not supported at %s level here", name, level)
	}
	// Operations are exempt from the middleware's negotiation so that a
	// report can answer CSV; anything else must accept FHIR JSON.
	if err := negotiate(c); err != nil && c.Query("_format") != "text/csv" && !strings.Contains(c.GetHeader("Accept"), "text/csv") &&
		!slices.ContainsFunc(op.Produces, func(mt string) bool { return strings.Contains(c.GetHeader("Accept"), mt) }) {
		return err
	}
	req := &operation.Request{Type: typ, ID: id, Method: c.Request.Method, Format: c.Query("_format"), Accept: c.GetHeader("Accept"),
		BaseURL: s.cfg.BaseURL, Idempotency: idempotencyOf(c), Header: c.Request.Header.Clone(), Query: c.Request.URL.Query()}
	switch c.Request.Method {
	case http.MethodDelete:
		if !op.Deletes {
			return notSupported(c)
		}
		query := c.Request.URL.Query()
		if err := checkSearchSize(query); err != nil {
			return err
		}
		req.Params = operation.FromQuery(query)
	case http.MethodGet:
		if op.Affects {
			return fhir.Errorf(fhir.NotSupported, "not-supported", "", "$%s changes data: invoke it with POST", name)
		}
		query := c.Request.URL.Query()
		if err := checkSearchSize(query); err != nil {
			return err
		}
		req.Params = operation.FromQuery(query)
	case http.MethodPost:
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			return err
		}
		if mt := uploadType(c, op); mt != "" {
			// An upload in a media type the operation declares: its
			// inputs are in the query string.
			if err := checkUTF8(body, "the request body"); err != nil {
				return err
			}
			query := c.Request.URL.Query()
			if err := checkSearchSize(query); err != nil {
				return err
			}
			req.Body, req.ContentType, req.Params = body, mt, operation.FromQuery(query)
			break
		}
		if err := checkBodyType(c, body, fhirJSON, isJSONType); err != nil {
			return err
		}
		if err := checkUTF8(body, "the request body"); err != nil {
			return err
		}
		req.Body = body
		req.Params = &operation.Parameters{}
		if len(body) > 0 {
			if err := fhir.CheckDepth(body); err != nil {
				return err
			}
			if p, err := operation.ParseBody(body); err == nil {
				req.Params = p
			} else if name != "validate" {
				return err
			}
		}
	default:
		return notSupported(c)
	}
	if op.AccessFor != nil {
		as := *op
		as.Access = op.AccessFor(req.Params)
		op = &as
	}
	ctx, err := s.sec.AuthorizeOperation(c.Request.Context(), op, typ, id)
	if err != nil {
		return err
	}
	res, err := op.Handle(ctx, req)
	if err != nil {
		return err
	}
	for k, vs := range res.Header {
		for _, v := range vs {
			c.Writer.Header().Add(k, v)
		}
	}
	status := res.Status
	if status == 0 {
		status = http.StatusOK
	}
	if res.ContentType != "" {
		c.Data(status, res.ContentType, res.Body)
		return nil
	}
	writeJSON(c, status, res.Body)
	return nil
}

// uploadType returns the request body's media type when it is one of the
// operation's BodyTypes, and "" otherwise (FHIR JSON, or refused by
// checkBodyType).
func uploadType(c *gin.Context, op *Operation) string {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || !slices.Contains(op.BodyTypes, mt) {
		return ""
	}
	return mt
}

// validateOp is $validate: the resource in the body (or in a "resource"
// parameter) is checked as a create or update would check it; the answer is
// an OperationOutcome listing every problem, 200 either way.
func (s *Server) validateOp(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	raw := req.Body
	if p, ok := req.Params.Get("resource"); ok && p.Resource != nil {
		raw = p.Resource
	}
	if len(raw) == 0 {
		return nil, fhir.Errorf(fhir.Invalid, "required", "", "$validate needs a resource in the body or a resource parameter")
	}
	_, err := s.checkResource(ctx, raw, req.Type, "")
	if err != nil {
		e := fhir.AsError(err)
		if e.Kind != fhir.Invalid {
			return nil, err
		}
		return &operation.Result{Body: fhir.OperationOutcome(e.Issues...)}, nil
	}
	return &operation.Result{Body: fhir.OperationOutcome()}, nil
}

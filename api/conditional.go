package api

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

func mimeType(ct string) (string, map[string]string, error) { return mime.ParseMediaType(ct) }

func readRaw(c *gin.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// conditionalMatch runs the search in query (a URL query string, with or
// without "Type?") inside tx. It returns the one match, nil for none, and
// fails with PreconditionFailed for several.
func (s *Server) conditionalMatch(ctx context.Context, tx store.Reader, typ, query string) (*fhir.Resource, error) {
	matches, err := s.conditionalSearch(ctx, tx, typ, query)
	if err != nil {
		return nil, err
	}
	switch len(matches) {
	case 0:
		return nil, nil
	case 1:
		return matches[0], nil
	}
	return nil, fhir.Errorf(fhir.PreconditionFailed, "multiple-matches", "", "the condition %q matches %d %s resources; it must match at most one", query, len(matches), typ)
}

func (s *Server) conditionalSearch(ctx context.Context, tx store.Reader, typ, query string) ([]*fhir.Resource, error) {
	if i := strings.IndexByte(query, '?'); i >= 0 {
		query = query[i+1:]
	}
	params, err := url.ParseQuery(query)
	if err != nil || len(params) == 0 {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "", "the condition %q is not a search query", query)
	}
	if err := checkSearchSize(params); err != nil {
		return nil, err
	}
	q, err := s.search.Parse(typ, params, search.ParseOptions{Strict: true})
	if err != nil {
		return nil, err
	}
	if err := s.sec.RestrictQuery(ctx, q); err != nil {
		return nil, err
	}
	q.Count = 2
	page, err := tx.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	return page.Resources, nil
}

// conditionalUpdate serves PUT /fhir/:type?search.
func (s *Server) conditionalUpdate(c *gin.Context, typ string) error {
	if err := s.cfg.mustWrite(typ); err != nil {
		return err
	}
	if c.Request.URL.RawQuery == "" {
		return fhir.Errorf(fhir.Invalid, "invalid", "", "PUT /%s needs an id in the URL or a search condition", typ)
	}
	obj, err := s.parseResource(c, typ)
	if err != nil {
		return err
	}
	var res *fhir.Resource
	var created bool
	var wtx *write.Tx // the attempt that committed
	err = s.repo.UpdateWith(c.Request.Context(), write.TxOptions{Claim: claimOf(c)}, func(ctx context.Context, tx *write.Tx) error {
		wtx = tx
		id, err := s.conditionalTarget(ctx, tx, typ, c.Request.URL.RawQuery, obj)
		if err != nil {
			return err
		}
		res, created, err = tx.Put(ctx, typ, id, obj, 0)
		return err
	})
	if err != nil {
		return err
	}
	s.writeResource(c, statusFor(created), wtx.Latest(res))
	return nil
}

// conditionalTarget returns the id a conditional update of typ writes: the
// one match's, else the body's id, else a new one. A body id naming a live
// resource the condition did not select is a conflict (as R5 makes
// explicit): the update must not replace what it was not aimed at.
func (s *Server) conditionalTarget(ctx context.Context, tx *write.Tx, typ, query string, obj *fhir.Object) (string, error) {
	match, err := s.conditionalMatch(ctx, tx, typ, query)
	if err != nil {
		return "", err
	}
	if match != nil {
		if err := checkBodyID(obj, match.ID, false); err != nil {
			return "", err
		}
		return match.ID, nil
	}
	id, _ := obj.String("id")
	if id == "" {
		return write.NewID(), nil
	}
	if _, err := tx.Read(ctx, typ, id); err == nil {
		return "", fhir.Errorf(fhir.Conflict, "conflict", typ+".id",
			"%s/%s exists but does not match the condition %q; a conditional update does not replace it", typ, id, query)
	}
	return id, nil
}

// conditionalDelete serves DELETE /fhir/:type?search (one match at most).
func (s *Server) conditionalDelete(c *gin.Context, typ string) error {
	if err := s.cfg.mustWrite(typ); err != nil {
		return err
	}
	if c.Request.URL.RawQuery == "" {
		return fhir.Errorf(fhir.Invalid, "invalid", "", "DELETE /%s needs an id in the URL or a search condition", typ)
	}
	err := s.repo.Update(c.Request.Context(), func(ctx context.Context, tx *write.Tx) error {
		match, err := s.conditionalMatch(ctx, tx, typ, c.Request.URL.RawQuery)
		if err != nil || match == nil {
			return err
		}
		_, err = tx.Delete(ctx, typ, match.ID, 0)
		return err
	})
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// patch serves PATCH /fhir/:type/:id with a JSON Patch document.
func (s *Server) patch(c *gin.Context, typ, id string) error {
	return s.applyPatch(c, typ, func(ctx context.Context, tx *write.Tx) (string, error) { return id, nil })
}

// conditionalPatch serves PATCH /fhir/:type?search.
func (s *Server) conditionalPatch(c *gin.Context, typ string) error {
	return s.applyPatch(c, typ, func(ctx context.Context, tx *write.Tx) (string, error) {
		match, err := s.conditionalMatch(ctx, tx, typ, c.Request.URL.RawQuery)
		if err == nil && match == nil {
			err = fhir.Errorf(fhir.NotFound, "not-found", "", "no %s matches %q", typ, c.Request.URL.RawQuery)
		}
		if err != nil {
			return "", err
		}
		return match.ID, nil
	})
}

func (s *Server) applyPatch(c *gin.Context, typ string, target func(context.Context, *write.Tx) (string, error)) error {
	if err := s.cfg.mustWrite(typ); err != nil {
		return err
	}
	mt, _, _ := mimeType(c.GetHeader("Content-Type"))
	if mt != "application/json-patch+json" {
		return fhir.Errorf(fhir.UnsupportedMedia, "not-supported", "", "PATCH takes a JSON Patch document (application/json-patch+json), not %q", c.GetHeader("Content-Type"))
	}
	match, err := ifMatch(c)
	if err != nil {
		return err
	}
	doc, err := readRaw(c)
	if err != nil {
		return err
	}
	p, err := decodePatch(doc)
	if err != nil {
		return err
	}
	var res *fhir.Resource
	var wtx *write.Tx // the attempt that committed
	err = s.repo.UpdateWith(c.Request.Context(), write.TxOptions{Claim: claimOf(c)}, func(ctx context.Context, tx *write.Tx) error {
		wtx = tx
		id, err := target(ctx, tx)
		if err != nil {
			return err
		}
		res, err = s.patchInTx(ctx, tx, typ, id, p, match, "")
		return err
	})
	if err != nil {
		return err
	}
	s.writeResource(c, http.StatusOK, wtx.Latest(res))
	return nil
}

func decodePatch(doc []byte) (jsonpatch.Patch, error) {
	if err := checkUTF8(doc, "the JSON Patch document"); err != nil {
		return nil, err
	}
	if err := fhir.CheckDepth(doc); err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch(doc)
	if err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "", "the body is not a JSON Patch document: %v", err)
	}
	return p, nil
}

// patchInTx applies p to the current version of typ/id and writes the
// result, validated like any update. where locates issues in a Bundle.
func (s *Server) patchInTx(ctx context.Context, tx *write.Tx, typ, id string, p jsonpatch.Patch, match int64, where string) (*fhir.Resource, error) {
	cur, err := tx.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	// The caller must be able to change what it patches before the patch
	// is tried on it: a failed "test" or a broken result would otherwise
	// tell it about a resource it may not change.
	if err := s.sec.AuthorizeChange(ctx, tx, cur); err != nil {
		return nil, err
	}
	// The patch applies to the resource as the client reads it, derived
	// values included (the write then drops them: they are the server's).
	if err := s.served(ctx, tx, true, cur); err != nil {
		return nil, err
	}
	patched, err := p.Apply(cur.JSON)
	if err != nil {
		return nil, relocate(fhir.Errorf(fhir.Unprocessable, "processing", "", "the patch cannot be applied to %s/%s: %v", typ, id, err), where)
	}
	obj, err := s.checkResource(ctx, patched, typ, where)
	if err != nil {
		return nil, err
	}
	if err := checkBodyID(obj, id, true); err != nil {
		return nil, relocate(fmt.Errorf("the patch changed the id: %w", err), where)
	}
	if match == 0 {
		match = cur.Version
	}
	res, _, err := tx.Put(ctx, typ, id, obj, match)
	return res, err
}

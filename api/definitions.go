package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/fhir"
)

// Definitions holds the read-only conformance resources the server serves
// (SearchParameter, OperationDefinition, StructureDefinition, ValueSet,
// CodeSystem), so every canonical URL Signpost publishes resolves.
type Definitions struct {
	byID  map[string]json.RawMessage // "Type/id"
	byURL map[string]string          // canonical url → "Type/id"
	ids   map[string][]string        // type → sorted ids
}

// NewDefinitions indexes resources by type, id and canonical url.
func NewDefinitions(resources []json.RawMessage) (*Definitions, error) {
	d := &Definitions{byID: map[string]json.RawMessage{}, byURL: map[string]string{}, ids: map[string][]string{}}
	for _, raw := range resources {
		var head struct {
			ResourceType, ID, URL string
		}
		if err := json.Unmarshal(raw, &head); err != nil || head.ResourceType == "" || head.ID == "" {
			return nil, fmt.Errorf("api: a definition has no resourceType or id: %.80s", raw)
		}
		key := head.ResourceType + "/" + head.ID
		if _, dup := d.byID[key]; dup {
			continue // the first wins: ours are added after the official ones only where new
		}
		d.byID[key] = raw
		if head.URL != "" {
			d.byURL[head.URL] = key
		}
		d.ids[head.ResourceType] = append(d.ids[head.ResourceType], head.ID)
	}
	for _, ids := range d.ids {
		sort.Strings(ids)
	}
	return d, nil
}

// Resolve returns the definition with canonical url.
func (d *Definitions) Resolve(url string) (json.RawMessage, bool) {
	key, ok := d.byURL[url]
	if !ok {
		return nil, false
	}
	return d.byID[key], true
}

func (s *Server) readDefinition(c *gin.Context, typ, id string) error {
	if typ == "CapabilityStatement" && id == capabilityID {
		writeJSON(c, http.StatusOK, s.capabilityStatement())
		return nil
	}
	raw, ok := s.definitions.byID[typ+"/"+id]
	if !ok {
		return fhir.Errorf(fhir.NotFound, "not-found", "", "%s/%s is not known", typ, id)
	}
	writeJSON(c, http.StatusOK, raw)
	return nil
}

// searchDefinitions answers a search on a read-only type by url or _id
// (all, when neither is given); definitionSearchParams lists them.
func (s *Server) searchDefinitions(c *gin.Context, typ string) error {
	params := c.Request.URL.Query()
	var entries []bundleEntry
	add := func(id string) {
		raw := s.definitions.byID[typ+"/"+id]
		if typ == "CapabilityStatement" && id == capabilityID {
			raw = s.capabilityStatement()
		}
		entries = append(entries, bundleEntry{FullURL: s.cfg.BaseURL + "/" + typ + "/" + id, Resource: raw, Search: searchMatch})
	}
	ids := s.definitions.ids[typ]
	if typ == "CapabilityStatement" {
		ids = []string{capabilityID}
	}
	for _, id := range ids {
		if want := params.Get("_id"); want != "" && want != id {
			continue
		}
		if want := params.Get("url"); want != "" && s.definitions.byURL[want] != typ+"/"+id {
			continue
		}
		add(id)
	}
	total := len(entries)
	b := &bundle{ResourceType: "Bundle", Type: "searchset", Total: &total, Entry: entries,
		Link: []link{{Relation: "self", URL: s.cfg.BaseURL + "/" + typ + "?" + c.Request.URL.RawQuery}}}
	writeJSON(c, http.StatusOK, b.encode())
	return nil
}

package directory

import (
	"encoding/json"
	"strings"

	"github.com/signpost-fhir/signpost/fhir"
)

// setExtension replaces every extension of url on obj with exts.
func setExtension(obj *fhir.Object, url string, exts ...any) error {
	var cur []json.RawMessage
	if raw := obj.Get("extension"); raw != nil {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return fhir.Errorf(fhir.Invalid, "structure", "extension", "extension must be an array")
		}
	}
	var out []json.RawMessage
	for _, e := range cur {
		var head struct {
			URL string `json:"url"`
		}
		_ = json.Unmarshal(e, &head)
		if head.URL != url {
			out = append(out, e)
		}
	}
	for _, e := range exts {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		obj.Delete("extension")
		return nil
	}
	obj.Set("extension", out)
	return nil
}

// copyExtension makes obj's extensions of url those of old.
func copyExtension(obj *fhir.Object, old []byte, url string) error {
	var o struct {
		Extension []json.RawMessage `json:"extension"`
	}
	if old != nil {
		_ = json.Unmarshal(old, &o)
	}
	var keep []any
	for _, e := range o.Extension {
		var head struct {
			URL string `json:"url"`
		}
		_ = json.Unmarshal(e, &head)
		if head.URL == url {
			keep = append(keep, json.RawMessage(e))
		}
	}
	return setExtension(obj, url, keep...)
}

// splitRef splits "Type/id" or "base/Type/id" into its type and id.
func splitRef(ref string) (typ, id string, ok bool) {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if len(parts) < 2 {
		return "", "", false
	}
	typ, id = parts[len(parts)-2], parts[len(parts)-1]
	return typ, id, typ != "" && id != "" && typ[0] >= 'A' && typ[0] <= 'Z'
}

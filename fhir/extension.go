package fhir

import (
	"encoding/json"
	"slices"
	"strings"
)

// SetExtensions replaces every extension of url on the object with exts
// (none removes them), keeping the other extensions in place. It is how
// server-owned extensions (waiting time, worklist…) are written.
func (o *Object) SetExtensions(url string, exts ...any) error {
	var cur []json.RawMessage
	if raw := o.Get("extension"); raw != nil {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return Errorf(Invalid, "structure", "extension", "extension must be an array")
		}
	}
	var out []json.RawMessage
	for _, e := range cur {
		if extensionURL(e) != url {
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
		o.Delete("extension")
		return nil
	}
	o.Set("extension", out)
	return nil
}

// KeepExtensions makes the object's extensions of url those of old (the
// stored version's JSON, or nil): a client cannot set or change a
// server-owned extension.
func (o *Object) KeepExtensions(old []byte, url string) error {
	var prev struct {
		Extension []json.RawMessage `json:"extension"`
	}
	if old != nil {
		_ = json.Unmarshal(old, &prev)
	}
	var keep []any
	for _, e := range prev.Extension {
		if extensionURL(e) == url {
			keep = append(keep, e)
		}
	}
	return o.SetExtensions(url, keep...)
}

// ReplaceExtensions returns body (a resource's JSON object) with every
// extension whose url is one of urls removed and exts appended, the other
// extensions and members left as they are. It returns body itself when
// that changes nothing. It is how values kept beside a resource are added
// to it as it is served (store.AddDerived).
//
// A compact body of plain member names (as the store keeps them) is
// spliced without decoding it (replaceCompact), with exactly the result
// of decoding it; any other goes through ParseObject.
func ReplaceExtensions(body []byte, urls []string, exts []json.RawMessage) ([]byte, error) {
	if len(urls) == 0 && len(exts) == 0 {
		return body, nil
	}
	if out, ok := replaceCompact(body, urls, exts); ok {
		return out, nil
	}
	return replaceParsed(body, urls, exts)
}

// replaceParsed is ReplaceExtensions through ParseObject.
func replaceParsed(body []byte, urls []string, exts []json.RawMessage) ([]byte, error) {
	o, err := ParseObject(body)
	if err != nil {
		return nil, err
	}
	var cur []json.RawMessage
	if raw := o.Get("extension"); raw != nil {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return nil, Errorf(Invalid, "structure", "extension", "extension must be an array")
		}
	}
	out := make([]json.RawMessage, 0, len(cur)+len(exts))
	for _, e := range cur {
		u := extensionURL(e)
		if !slices.Contains(urls, u) {
			out = append(out, e)
		}
	}
	if len(out) == len(cur) && len(exts) == 0 {
		return body, nil
	}
	out = append(out, exts...)
	if len(out) == 0 {
		o.Delete("extension")
	} else {
		o.Set("extension", out)
	}
	return o.Bytes(), nil
}

func extensionURL(ext json.RawMessage) string {
	var head struct {
		URL string `json:"url"`
	}
	_ = json.Unmarshal(ext, &head)
	return head.URL
}

// SplitReference splits a literal reference ("Type/id", "Type/id/_history/n"
// or an absolute URL ending so) into its type and id.
func SplitReference(ref string) (typ, id string, ok bool) {
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

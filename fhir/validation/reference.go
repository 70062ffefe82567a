package validation

import (
	"net/url"
	"slices"
	"strings"
)

// reference checks the form of Reference.reference and, where the element
// restricts its targets, the type it points to. Relative references must be
// Type/id or Type/id/_history/vid with an R4 resource type; "#id" must name a
// contained resource of the current root (ref-1); urn:uuid: and urn:oid:
// references must be valid uuid and oid values; anything else must be an
// absolute URL.
func (w *walker) reference(n *node, m map[string]any, at *loc) {
	if typ, ok := m["type"].(string); ok && n.targets != nil && w.v.r4Types[typ] && !n.targets[typ] {
		w.wrongTarget(n, typ, typ, &loc{parent: at, name: "type", index: -1})
	}
	ref, ok := m["reference"].(string)
	if !ok || strings.TrimSpace(ref) == "" {
		return // absent, or already reported as a bad string
	}
	rat := &loc{parent: at, name: "reference", index: -1}
	var target string // the referenced resource type, when it can be told
	switch {
	case ref[0] == '#':
		if id := ref[1:]; id != "" {
			t, ok := w.contained[id]
			if !ok {
				w.report("invariant", rat, "ref-1: %s does not match the id of a contained resource", quote(ref))
				return
			}
			target = t
		}
	case strings.HasPrefix(ref, "urn:uuid:"):
		if !w.v.types["uuid"].prim.regex.MatchString(ref) {
			w.report("value", rat, "%s is not a valid urn:uuid: reference", quote(ref))
		}
		return
	case strings.HasPrefix(ref, "urn:oid:"):
		if !w.v.types["oid"].prim.regex.MatchString(ref) {
			w.report("value", rat, "%s is not a valid urn:oid: reference", quote(ref))
		}
		return
	case strings.Contains(ref, "://"):
		u, err := url.Parse(ref)
		if err != nil || u.Scheme == "" || u.Host == "" || strings.ContainsAny(ref, " \t\r\n") {
			w.report("value", rat, "%s is not a valid absolute reference URL", quote(ref))
			return
		}
		// A RESTful FHIR URL ends in Type/id or Type/id/_history/vid.
		parts := strings.Split(strings.TrimSuffix(u.Path, "/"), "/")
		if len(parts) >= 4 && parts[len(parts)-2] == "_history" {
			parts = parts[:len(parts)-2]
		}
		if len(parts) >= 2 && w.v.r4Types[parts[len(parts)-2]] {
			target = parts[len(parts)-2]
		}
	default:
		t, ok := w.relative(ref)
		if !ok {
			w.report("value", rat, "%s is not a valid reference (expected Type/id, Type/id/_history/vid, #id, urn:uuid:, urn:oid: or an absolute URL)", quote(ref))
			return
		}
		target = t
	}
	if target != "" && n.targets != nil && !n.targets[target] {
		w.wrongTarget(n, ref, target, rat)
	}
}

// relative parses Type/id or Type/id/_history/vid and returns the type.
func (w *walker) relative(ref string) (string, bool) {
	parts := strings.Split(ref, "/")
	if len(parts) != 2 && (len(parts) != 4 || parts[2] != "_history") {
		return "", false
	}
	id := w.v.types["id"].prim.regex
	if !w.v.r4Types[parts[0]] || !id.MatchString(parts[1]) || len(parts) == 4 && !id.MatchString(parts[3]) {
		return "", false
	}
	return parts[0], true
}

func (w *walker) wrongTarget(n *node, ref, target string, at *loc) {
	allowed := make([]string, 0, len(n.targets))
	for t := range n.targets {
		allowed = append(allowed, t)
	}
	slices.Sort(allowed)
	w.report("invalid", at, "%s refers to a %s, but %s may only refer to %s",
		quote(ref), target, strings.TrimSuffix(n.path, "[x]"), strings.Join(allowed, " | "))
}

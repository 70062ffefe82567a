package search

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// extraction is the reusable state of one Extract call.
type extraction struct {
	d     doc
	w     walker
	items []item
	sub   []item // a composite component's values under one base element
}

var extractions = sync.Pool{New: func() any { return new(extraction) }}

// Extract returns the index entries of a resource: for every supported
// parameter of resourceType, the values its expression reaches in the JSON,
// indexed by the parameter's type. Values that cannot be read (a malformed
// date) are skipped. Reference entries for Reference.identifier are added
// under Param+":identifier" (Type Token), and Identifier types under
// Param+":of-type" (Type Token, Value "typecode|value"). Parameters over
// a derived value (Param.Derived) have no entries from the stored
// resource, whatever its JSON holds: see ExtractDerived.
func (r *Registry) Extract(resourceType string, body []byte) ([]Entry, error) {
	return r.extract(resourceType, body, nil, nil, false)
}

// ExtractParams is Extract for only the parameters of resourceType whose
// code keep accepts (composite parameters left out): the same entries
// for those parameters, at the cost of evaluating only them. A store that
// indexes a type for some of its parameters (the audit trail) uses it.
func (r *Registry) ExtractParams(resourceType string, body []byte, keep func(code string) bool) ([]Entry, error) {
	return r.extract(resourceType, body, func(p *Param) bool { return p.comp == nil && keep(p.Code) }, nil, false)
}

// ExtractServed returns the index entries of a resource as it is served,
// with its derived values in its JSON (store.AddDerived): Extract's, and
// those of the parameters over derived values evaluated over the JSON too.
// It is what an evaluation of searches over served resources indexes
// (Oracle).
func (r *Registry) ExtractServed(resourceType string, body []byte) ([]Entry, error) {
	return r.extract(resourceType, body, nil, nil, true)
}

// ExtractDerived returns the index entries of a derived value of a
// resource of resourceType: the extension ext (an Extension element's
// JSON) whose url is the parameters' Param.Derived. Only those parameters
// are evaluated, over a resource holding the extension alone; their
// entries are the value's (store.DerivedValue.Index).
func (r *Registry) ExtractDerived(resourceType string, ext json.RawMessage) ([]Entry, error) {
	var head struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(ext, &head); err != nil || head.URL == "" {
		return nil, fmt.Errorf("extract %s: a derived value must be an extension with a url", resourceType)
	}
	rt, _ := json.Marshal(resourceType)
	doc := make([]byte, 0, len(ext)+len(rt)+32)
	doc = append(append(append(append(doc, `{"resourceType":`...), rt...), `,"extension":[`...), ext...)
	doc = append(doc, "]}"...)
	return r.extract(resourceType, doc, func(p *Param) bool { return p.Derived == head.URL }, nil, true)
}

// References returns the reference entries of one reference parameter of a
// resource ("*": of every reference parameter), evaluating only those
// expressions: what _include needs from each match (Targets asks it for
// each body of a page it has not seen). Only the root members those expressions start from are parsed, and the
// entries of recently seen bodies are remembered by the body's bytes
// (refMemo): a page of the same Slots asked for again parses none of
// them. The entries returned may be shared with other callers: they must
// not be changed (the slice is clipped, so an append copies).
func (r *Registry) References(resourceType string, body []byte, param string) ([]Entry, error) {
	keep := func(p *Param) bool {
		return p.Type == Reference && (param == "*" || p.Code == param)
	}
	h := r.refs.hash(resourceType, param, body)
	if entries, ok := r.refs.get(h, resourceType, param, body); ok {
		return entries, nil
	}
	key := resourceType + "." + param
	heads, ok := r.refHeads.Load(key)
	if !ok {
		heads, _ = r.refHeads.LoadOrStore(key, rootSteps(r.ordered[resourceType], keep))
	}
	src := string(body)
	entries, err := r.extractSrc(resourceType, src, keep, heads.([]step), false)
	if err != nil {
		return nil, err
	}
	entries = entries[:len(entries):len(entries)]
	r.refs.put(h, resourceType, param, src, entries)
	return entries, nil
}

// rootSteps returns the first steps of the kept parameters' paths: the
// root members their evaluation reads. It returns nil (parse everything)
// when a path starts with a filter rather than a member.
func rootSteps(params []*Param, keep func(*Param) bool) []step {
	heads := []step{}
	for _, p := range params {
		if p.prog == nil || !keep(p) {
			continue
		}
		for _, path := range p.prog.paths {
			if len(path) == 0 || path[0].name == "" {
				return nil
			}
			heads = append(heads, path[0])
		}
	}
	return heads
}

// extract evaluates the parameters of resourceType that keep accepts (all,
// composites included, when keep is nil), leaving out those over derived
// values unless derived is set. When only is not nil, only those root
// members are parsed: keep must accept no parameter whose paths start
// elsewhere.
func (r *Registry) extract(resourceType string, body []byte, keep func(*Param) bool, only []step, derived bool) ([]Entry, error) {
	// The entries' strings share body's memory through src. Copy once so
	// that entries stay valid whatever the caller does with body.
	return r.extractSrc(resourceType, string(body), keep, only, derived)
}

// extractSrc is extract over the body's copy src, whose memory the
// entries' strings share.
func (r *Registry) extractSrc(resourceType string, src string, keep func(*Param) bool, only []step, derived bool) ([]Entry, error) {
	params := r.ordered[resourceType]
	if params == nil {
		return nil, fmt.Errorf("extract: no search parameters for resource type %q", resourceType)
	}
	x := extractions.Get().(*extraction)
	defer extractions.Put(x)
	x.d.only = only
	err := x.d.parse(src)
	x.d.only = nil
	if err != nil {
		return nil, fmt.Errorf("extract %s: %w", resourceType, err)
	}
	if x.d.nodes[0].kind != kObject {
		return nil, fmt.Errorf("extract %s: the resource is not a JSON object", resourceType)
	}
	// Room for an entry per parameter evaluated and a few more: entries
	// are large, and growing the slice copies them.
	size := len(params) + 4
	if keep != nil {
		size = 4
		for _, p := range params {
			if p.prog != nil && keep(p) {
				size++
			}
		}
	}
	out := make([]Entry, 0, size)
	for _, p := range params {
		if p.comp != nil && keep == nil {
			out = r.indexComposite(out, p, x)
			continue
		}
		if p.prog == nil || (keep != nil && !keep(p)) || (p.Derived != "" && !derived) {
			continue
		}
		x.items = x.w.eval(p.prog, &x.d, x.items[:0])
		if p.prog.truthy {
			v := "false"
			for _, it := range x.items {
				if n := x.d.nodes[it.n]; n.kind != kBool || n.val == "true" {
					v = "true"
				}
			}
			out = append(out, Entry{Param: p.Code, Type: Token, Value: v})
			continue
		}
		for _, it := range x.items {
			out = r.index(out, p, &x.d, it)
		}
	}
	x.d.src = ""
	return out, nil
}

// index appends the entries of one value.
func (r *Registry) index(out []Entry, p *Param, d *doc, it item) []Entry {
	if it.typ == "Extension" {
		if it = extensionValue(d, it.n); it.n < 0 {
			return out
		}
	}
	n := &d.nodes[it.n]
	switch p.Type {
	case Token:
		return indexToken(out, p.Code, d, it)
	case String:
		return indexString(out, p.Code, d, it)
	case Date:
		return r.indexDate(out, p.Code, d, it)
	case Reference:
		return r.indexReference(out, p.Code, d, it)
	case URI:
		if n.kind == kString {
			out = append(out, Entry{Param: p.Code, Type: URI, Value: n.val})
		}
	case Number:
		if n.kind == kNumber {
			if lo, hi, err := NumberRange(n.val); err == nil {
				out = append(out, Entry{Param: p.Code, Type: Number, NumLow: lo, NumHigh: hi, Value: n.val})
			}
		}
	case Quantity:
		return indexQuantity(out, p.Code, d, it)
	case Special:
		// near: Location.position as (latitude, longitude).
		// NumLow holds the latitude, NumHigh the longitude.
		lat, err1 := strconv.ParseFloat(d.text(it.n, "latitude"), 64)
		lon, err2 := strconv.ParseFloat(d.text(it.n, "longitude"), 64)
		if err1 == nil && err2 == nil {
			out = append(out, Entry{Param: p.Code, Type: Special, NumLow: lat, NumHigh: lon})
		}
	}
	return out
}

func indexToken(out []Entry, code string, d *doc, it item) []Entry {
	n := it.n
	switch it.typ {
	case "Coding":
		return appendCoding(out, code, d, n, "")
	case "CodeableConcept":
		text := d.text(n, "text")
		before := len(out)
		d.each(d.child(n, "coding"), func(c int32) { out = appendCoding(out, code, d, c, text) })
		if len(out) == before && text != "" {
			out = append(out, Entry{Param: code, Type: Token, Text: Normalize(text)})
		}
		return out
	case "Identifier":
		value := d.text(n, "value")
		typ := d.child(n, "type")
		text := ""
		if typ >= 0 {
			text = Normalize(d.text(typ, "text"))
		}
		if value != "" {
			out = append(out, Entry{Param: code, Type: Token, System: d.text(n, "system"), Value: value, Text: text})
		}
		if typ >= 0 && value != "" {
			d.each(d.child(typ, "coding"), func(c int32) {
				out = append(out, Entry{Param: code + ":of-type", Type: Token, System: d.text(c, "system"),
					Value: d.text(c, "code") + "|" + value})
			})
		}
		return out
	case "ContactPoint":
		if v := d.text(n, "value"); v != "" {
			out = append(out, Entry{Param: code, Type: Token, System: d.text(n, "system"), Value: v})
		}
		return out
	case "Reference":
		// A token over a Reference (rare) matches its identifier.
		if id := d.child(n, "identifier"); id >= 0 {
			return indexToken(out, code, d, item{id, "Identifier"})
		}
		return out
	}
	if nd := d.nodes[n]; nd.kind == kString || nd.kind == kBool || nd.kind == kNumber {
		out = append(out, Entry{Param: code, Type: Token, Value: nd.val})
	}
	return out
}

func appendCoding(out []Entry, code string, d *doc, c int32, text string) []Entry {
	v := d.text(c, "code")
	t := text
	if disp := d.text(c, "display"); disp != "" {
		if t != "" {
			t += " "
		}
		t += disp
	}
	if v == "" && t == "" {
		return out
	}
	return append(out, Entry{Param: code, Type: Token, System: d.text(c, "system"), Value: v, Text: Normalize(t)})
}

func indexString(out []Entry, code string, d *doc, it item) []Entry {
	n := it.n
	var parts []string
	switch it.typ {
	case "HumanName":
		parts = []string{"text", "family", "given", "prefix", "suffix"}
	case "Address":
		parts = []string{"text", "line", "city", "district", "state", "postalCode", "country"}
	default:
		if nd := d.nodes[n]; nd.kind == kString {
			out = append(out, Entry{Param: code, Type: String, Text: Normalize(nd.val), Value: nd.val})
		}
		return out
	}
	for _, part := range parts {
		d.each(d.child(n, part), func(c int32) {
			if nd := d.nodes[c]; nd.kind == kString && nd.val != "" {
				out = append(out, Entry{Param: code, Type: String, Text: Normalize(nd.val), Value: nd.val})
			}
		})
	}
	return out
}

func (r *Registry) indexDate(out []Entry, code string, d *doc, it item) []Entry {
	n := it.n
	one := func(s string) (int64, int64, bool) {
		lo, hi, err := DateRange(s, r.loc)
		return lo, hi, err == nil
	}
	switch it.typ {
	case "Period":
		lo, hi := MinTime, MaxTime
		if s := d.text(n, "start"); s != "" {
			l, _, ok := one(s)
			if !ok {
				return out
			}
			lo = l
		}
		if s := d.text(n, "end"); s != "" {
			_, h, ok := one(s)
			if !ok {
				return out
			}
			hi = h
		}
		if lo == MinTime && hi == MaxTime {
			return out
		}
		return append(out, Entry{Param: code, Type: Date, Low: lo, High: hi})
	case "Timing":
		d.each(d.child(n, "event"), func(e int32) {
			if lo, hi, ok := one(d.nodes[e].val); ok {
				out = append(out, Entry{Param: code, Type: Date, Low: lo, High: hi})
			}
		})
		if rep := d.child(n, "repeat"); rep >= 0 {
			if b := d.child(rep, "boundsPeriod"); b >= 0 {
				out = r.indexDate(out, code, d, item{b, "Period"})
			}
		}
		return out
	}
	if nd := d.nodes[n]; nd.kind == kString {
		if lo, hi, ok := one(nd.val); ok {
			out = append(out, Entry{Param: code, Type: Date, Low: lo, High: hi})
		}
	}
	return out
}

func (r *Registry) indexReference(out []Entry, code string, d *doc, it item) []Entry {
	n := it.n
	switch it.typ {
	case "Reference":
		if ref := d.text(n, "reference"); ref != "" {
			out = r.appendRef(out, code, ref)
		}
		if id := d.child(n, "identifier"); id >= 0 {
			if v := d.text(id, "value"); v != "" {
				out = append(out, Entry{Param: code + ":identifier", Type: Token, System: d.text(id, "system"), Value: v})
			}
		}
		return out
	}
	if nd := d.nodes[n]; nd.kind == kString && nd.val != "" {
		// canonical or uri: a canonical reference, version dropped.
		v, _, _ := strings.Cut(nd.val, "|")
		out = r.appendRef(out, code, v)
	}
	return out
}

// appendRef indexes a literal reference: relative (or under the server's
// base) as RefType/RefID, any other absolute URL as Value.
func (r *Registry) appendRef(out []Entry, code, ref string) []Entry {
	typ, id, base := splitReference(ref)
	switch {
	case typ == "":
		if ref[0] == '#' {
			return out // contained resources are not searchable by reference
		}
		return append(out, Entry{Param: code, Type: Reference, Value: ref})
	case base == "" || (r.base != "" && base == r.base):
		return append(out, Entry{Param: code, Type: Reference, RefType: typ, RefID: id})
	}
	return append(out, Entry{Param: code, Type: Reference, Value: ref})
}

func indexQuantity(out []Entry, code string, d *doc, it item) []Entry {
	n := it.n
	if it.typ == "Range" {
		lo, hi := d.child(n, "low"), d.child(n, "high")
		e := Entry{Param: code, Type: Quantity, NumLow: -1e308, NumHigh: 1e308}
		q := lo
		if q < 0 {
			q = hi
		}
		if q < 0 {
			return out
		}
		e.System, e.Value = d.text(q, "system"), d.text(q, "code")
		if lo >= 0 {
			if l, _, err := NumberRange(d.text(lo, "value")); err == nil {
				e.NumLow = l
			}
		}
		if hi >= 0 {
			if _, h, err := NumberRange(d.text(hi, "value")); err == nil {
				e.NumHigh = h
			}
		}
		return append(out, e)
	}
	v := d.text(n, "value")
	lo, hi, err := NumberRange(v)
	if err != nil {
		return out
	}
	unit := d.text(n, "code")
	if unit == "" {
		unit = d.text(n, "unit")
	}
	if cur := d.text(n, "currency"); cur != "" { // Money
		return append(out, Entry{Param: code, Type: Quantity, NumLow: lo, NumHigh: hi, System: "urn:iso:std:iso:4217", Value: cur})
	}
	return append(out, Entry{Param: code, Type: Quantity, NumLow: lo, NumHigh: hi, System: d.text(n, "system"), Value: unit})
}

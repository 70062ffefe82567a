package mongo

import (
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// resDoc is a document of the resources collection (the current version
// of one resource, with its index) and of the versions collection (one
// version, without index).
type resDoc struct {
	// The fields a search orders by come first: lungo finds a field by
	// walking the document's fields in order.
	Key string `bson:"_id"` // resources: "Type/id"; versions: "Type/id/version"
	LU  int64  `bson:"lu"`  // lastUpdated, unix microseconds
	ID  string `bson:"id"`
	// SK holds, per parameter (escaped by skField), the values _sort
	// uses: {h: true, a: ascending value, d: descending value}.
	SK   bson.D `bson:"sk,omitempty"`
	Type string `bson:"type"`
	V    int64  `bson:"v"`
	LU1  int64  `bson:"lu1"` // lu+1: _lastUpdated as the range [lu, lu1)
	Del  bool   `bson:"del"`
	Seq  int64  `bson:"seq"` // history order (Store.nextSeq)
	// Ix holds the index entries: the version's own and those of the
	// derived values (D set); multikey indexes cover ix.p with ix.v,
	// ix.rt/ix.ri, ix.lo and ix.t.
	Ix []entryDoc `bson:"ix,omitempty"`
	// DV holds the derived values (store.Deriver).
	DV   []derivedDoc `bson:"dv,omitempty"`
	JSON []byte       `bson:"json,omitempty"`
}

// derivedDoc is one derived value.
type derivedDoc struct {
	Name  string     `bson:"n"`
	Value []byte     `bson:"val"`
	Ix    []entryDoc `bson:"ix,omitempty"`
}

// entryDoc is a search.Entry as stored: every field kept (a field absent
// would not compare), plus what lungo cannot compute at query time:
// SF, every suffix of a string's normalised text (for :contains, as a
// range on one of them), and WS, the suffixes of a token's text that
// start a word (for :text).
type entryDoc struct {
	P  string     `bson:"p"`
	Y  string     `bson:"y"`
	S  string     `bson:"s"`
	V  string     `bson:"v"`
	T  string     `bson:"t"`
	RT string     `bson:"rt"`
	RI string     `bson:"ri"`
	Lo int64      `bson:"lo"`
	Hi int64      `bson:"hi"`
	NL float64    `bson:"nl"`
	NH float64    `bson:"nh"`
	C  []entryDoc `bson:"c,omitempty"`
	SF []string   `bson:"sf,omitempty"`
	WS []string   `bson:"ws,omitempty"`
	D  string     `bson:"d,omitempty"` // the derived value's name, for its entries
}

func toEntryDoc(e search.Entry, derived string) entryDoc {
	d := entryDoc{P: e.Param, Y: string(e.Type), S: e.System, V: e.Value, T: e.Text, RT: e.RefType, RI: e.RefID,
		Lo: e.Low, Hi: e.High, NL: e.NumLow, NH: e.NumHigh, D: derived}
	switch e.Type {
	case search.String:
		d.SF = suffixes(e.Text, false)
	case search.Token:
		d.WS = suffixes(e.Text, true)
	}
	for _, c := range e.Components {
		d.C = append(d.C, toEntryDoc(c, ""))
	}
	return d
}

func toEntryDocs(es []search.Entry, derived string) []entryDoc {
	out := make([]entryDoc, 0, len(es))
	for _, e := range es {
		out = append(out, toEntryDoc(e, derived))
	}
	return out
}

// maxSuffixes bounds the suffixes kept of one text: a :contains search
// finds a value that starts within its first maxSuffixes characters.
const maxSuffixes = 256

// suffixes returns s and its suffixes (each starting at a character; with
// words, only those after a space), distinct.
func suffixes(s string, words bool) []string {
	out := []string{s}
	for i, n := 0, 0; i < len(s) && n < maxSuffixes; n++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		if words && s[i] != ' ' {
			i += size
			continue
		}
		i += size
		if i < len(s) {
			out = append(out, s[i:])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func newResDoc(r *fhir.Resource, seq int64) *resDoc {
	lu := r.LastUpdated.UnixMicro()
	d := &resDoc{Key: key(r.Type, r.ID), Type: r.Type, ID: r.ID, V: r.Version, LU: lu, LU1: lu + 1, Del: r.Deleted, Seq: seq}
	if !r.Deleted {
		d.JSON = r.JSON
	}
	return d
}

func versionDoc(d *resDoc) *resDoc {
	return &resDoc{Key: d.Key + "/" + strconv.FormatInt(d.V, 10), Type: d.Type, ID: d.ID, V: d.V, LU: d.LU, LU1: d.LU1, Del: d.Del, JSON: d.JSON, Seq: d.Seq}
}

// setIndex sets the document's entries to own and those of its derived
// values, and its sort values from them.
func (d *resDoc) setIndex(own []search.Entry) {
	d.Ix = toEntryDocs(own, "")
	d.reindex()
}

// ownEntries returns the document's entries that are not a derived value's.
func (d *resDoc) ownEntries() []entryDoc {
	var out []entryDoc
	for _, e := range d.Ix {
		if e.D == "" {
			out = append(out, e)
		}
	}
	return out
}

// reindex rebuilds Ix's derived entries from DV and SK from Ix.
func (d *resDoc) reindex() {
	ix := d.ownEntries()
	for _, v := range d.DV {
		ix = append(ix, v.Ix...)
	}
	d.Ix = ix
	d.SK = sortKeys(ix)
}

func (d *resDoc) resource() (*fhir.Resource, error) {
	res := &fhir.Resource{Type: d.Type, ID: d.ID, Version: d.V, LastUpdated: time.UnixMicro(d.LU).UTC(), Deleted: d.Del, JSON: d.JSON}
	if d.Del {
		res.JSON = nil
		return res, fhir.Errorf(fhir.Gone, "deleted", "", "%s/%s was deleted", d.Type, d.ID)
	}
	return res, nil
}

// skField is the field of SK for a parameter code: codes hold no dots or
// dollars, but a stored field name must not.
func skField(param string) string {
	return strings.NewReplacer(".", "%2E", "$", "%24").Replace(param)
}

// sortKeys computes, per parameter, the values _sort orders by as the
// oracle defines them: ascending by the smallest value (a date's or
// number's low bound), descending by the largest (its high bound);
// strings by normalised text, references by "Type/id" or URL, the rest by
// code.
func sortKeys(ix []entryDoc) bson.D {
	type kv struct{ a, d any }
	vals := map[string]*kv{}
	var order []string
	for _, e := range ix {
		var a, d any
		switch search.ParamType(e.Y) {
		case search.Date:
			a, d = e.Lo, e.Hi
		case search.Number, search.Quantity:
			a, d = e.NL, e.NH
		case search.String:
			a, d = e.T, e.T
		case search.Reference:
			s := e.V
			if s == "" {
				s = e.RT + "/" + e.RI
			}
			a, d = s, s
		default:
			a, d = e.V, e.V
		}
		cur := vals[e.P]
		if cur == nil {
			vals[e.P] = &kv{a, d}
			order = append(order, e.P)
			continue
		}
		if compare(a, cur.a) < 0 {
			cur.a = a
		}
		if compare(d, cur.d) > 0 {
			cur.d = d
		}
	}
	slices.Sort(order)
	out := bson.D{}
	for _, p := range order {
		v := vals[p]
		out = append(out, bson.E{Key: skField(p), Value: bson.D{{Key: "h", Value: true}, {Key: "a", Value: v.a}, {Key: "d", Value: v.d}}})
	}
	return out
}

// compare orders two sort values of one parameter (both numbers or both
// strings).
func compare(a, b any) int {
	switch x := a.(type) {
	case int64:
		y, _ := b.(int64)
		return cmp3(x < y, x > y)
	case float64:
		y, _ := b.(float64)
		return cmp3(x < y, x > y)
	case string:
		y, _ := b.(string)
		return strings.Compare(x, y)
	}
	return 0
}

func cmp3(lt, gt bool) int {
	switch {
	case lt:
		return -1
	case gt:
		return 1
	}
	return 0
}

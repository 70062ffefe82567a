package sqlite

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// compositeSchema holds composite parameters' tuples (search.Entry with
// Type Composite): one row per tuple, the components side by side, so that
// "all components match the same element" is a condition on one row.
// Each component i (up to search.MaxComponents) has four columns, filled
// by its type:
//
//	token:      s = system, v = code
//	string:     s = the value as written, v = the normalised text
//	uri:        v = the value
//	reference:  s = type and v = id of a local reference; s empty and
//	            v = the URL otherwise
//	date:       lo, hi = the range [low, high) in unix microseconds
//	number:     lo, hi = the range the precision implies, v = as written
//	quantity:   lo, hi as for a number, s = unit system, v = unit code
//
// and unused columns hold empty strings and zeros. lo and hi have no
// declared type, so dates stay integers and quantities reals. The primary
// key starts with the parameter and the first component's code (every R4
// composite starts with a token), so a search looks tuples up by code and
// checks the other components in the rows it reads; idx_composite_rid
// answers per-resource probes. Identical tuples of a resource are stored
// once.
//
// Resources written before this table existed have no rows in it: their
// composite parameters match once they are written again (or re-imported).
const compositeSchema = `
CREATE TABLE IF NOT EXISTS idx_composite (pid INTEGER NOT NULL,
	s1 TEXT NOT NULL, v1 TEXT NOT NULL, lo1 NOT NULL, hi1 NOT NULL,
	s2 TEXT NOT NULL, v2 TEXT NOT NULL, lo2 NOT NULL, hi2 NOT NULL,
	s3 TEXT NOT NULL, v3 TEXT NOT NULL, lo3 NOT NULL, hi3 NOT NULL,
	rid INTEGER NOT NULL,
	PRIMARY KEY (pid, v1, s1, lo1, hi1, v2, s2, lo2, hi2, v3, s3, lo3, hi3, rid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_composite_rid ON idx_composite (rid, pid);
`

// compositeTable describes idx_composite's rows for the inserter.
var compositeTable = indexTable{"idx_composite", "pid, s1, v1, lo1, hi1, s2, v2, lo2, hi2, s3, v3, lo3, hi3, rid", 14, 14}

// appendComposite appends the row of composite entry e for parameter pid
// of resource row rid to args.
func appendComposite(args []any, pid int64, e *search.Entry, rid int64) ([]any, error) {
	if n := len(e.Components); n < 1 || n > search.MaxComponents {
		return args, fmt.Errorf("index entry %s has %d components; idx_composite holds 1 to %d", e.Param, n, search.MaxComponents)
	}
	args = append(args, pid)
	for i := range search.MaxComponents {
		if i >= len(e.Components) {
			args = append(args, "", "", int64(0), int64(0))
			continue
		}
		c := &e.Components[i]
		switch c.Type {
		case search.Token:
			args = append(args, c.System, c.Value, int64(0), int64(0))
		case search.String:
			args = append(args, c.Value, c.Text, int64(0), int64(0))
		case search.URI:
			args = append(args, "", c.Value, int64(0), int64(0))
		case search.Reference:
			if c.RefType != "" {
				args = append(args, c.RefType, c.RefID, int64(0), int64(0))
			} else {
				args = append(args, "", c.Value, int64(0), int64(0))
			}
		case search.Date:
			args = append(args, "", "", c.Low, c.High)
		case search.Number, search.Quantity:
			args = append(args, c.System, c.Value, c.NumLow, c.NumHigh)
		default:
			return args, fmt.Errorf("index entry %s: component %s of type %q cannot be stored", e.Param, c.Param, c.Type)
		}
	}
	return append(args, rid), nil
}

// compositeConds renders the conditions of m's components on the columns
// of idx_composite (prefixed by alias when not "").
func compositeConds(m search.CompositeMatch, alias string) (frag, error) {
	if len(m.Components) > search.MaxComponents {
		return frag{}, fhir.Errorf(fhir.NotSupported, "not-supported", m.Param, "%s: at most %d components are supported", m.Param, search.MaxComponents)
	}
	var f frag
	if alias != "" {
		alias += "."
	}
	now := time.Now().UnixMicro()
	for i, c := range m.Components {
		n := strconv.Itoa(i + 1)
		s, v, lo, hi := alias+"s"+n, alias+"v"+n, alias+"lo"+n, alias+"hi"+n
		if i > 0 {
			f.add(" AND ")
		}
		switch c := c.(type) {
		case search.TokenIn:
			f.add(v+" IN ("+placeholders(len(c.Codes))+")", anys(c.Codes)...)
			if c.HasSystem {
				f.add(" AND "+s+" = ?", c.System)
			}
		case search.StringMatch:
			switch c.Mode {
			case search.StringExact:
				f.add(s+" = ?", c.Value)
			case search.StringContains:
				f.add(v+" LIKE ? ESCAPE '\\'", "%"+likeEscape(c.Value)+"%")
			default:
				f.add(v+" >= ? AND "+v+" < ?", c.Value, c.Value+"\U0010FFFF")
			}
		case search.URIMatch:
			switch c.Mode {
			case search.URIAbove:
				f.add("substr(?, 1, length("+v+")) = "+v, c.Value)
			case search.URIBelow:
				f.add(v+" >= ? AND "+v+" < ?", c.Value, c.Value+"\U0010FFFF")
			default:
				f.add(v+" = ?", c.Value)
			}
		case search.RefIn:
			var parts []string
			for _, ref := range c.Refs {
				switch {
				case ref.URL != "":
					parts = append(parts, "("+s+" = '' AND "+v+" = ?)")
					f.args = append(f.args, ref.URL)
				case ref.Type != "":
					parts = append(parts, "("+s+" = ? AND "+v+" = ?)")
					f.args = append(f.args, ref.Type, ref.ID)
				default:
					parts = append(parts, "("+s+" != '' AND "+v+" = ?)")
					f.args = append(f.args, ref.ID)
				}
			}
			f.sql += "(" + strings.Join(parts, " OR ") + ")"
		case search.DateMatch:
			if c.Prefix == search.Ap {
				d := apWidth(c.Low, now)
				f.add(lo+" < ? AND "+hi+" > ?", satAdd(c.High, d), satAdd(c.Low, -d))
			} else {
				sql, args := rangeCond(c.Prefix, lo, hi, c.Low, c.High)
				f.add("("+sql+")", args...)
			}
		case search.NumberMatch:
			sql, args := rangeCond(c.Prefix, lo, hi, c.Low, c.High)
			if c.Prefix == search.Ap {
				d := (c.Low + c.High) / 2 / 10
				d = max(d, -d)
				sql, args = lo+" < ? AND "+hi+" > ?", []any{c.High + d, c.Low - d}
			}
			f.add("("+sql+")", args...)
			if c.HasUnit {
				f.add(" AND "+v+" = ?", c.Unit)
				if c.System != "" {
					f.add(" AND "+s+" = ?", c.System)
				}
			}
		default:
			return frag{}, fhir.Errorf(fhir.NotSupported, "not-supported", m.Param, "%s: a %T component cannot be searched", m.Param, c)
		}
	}
	if len(m.Components) == 0 {
		f.sql = "1"
	}
	return f, nil
}

// compositeSet is m as a set of rids of typ read from idx_composite by
// parameter and, when the first component is a token, by code.
func (b *builder) compositeSet(m search.CompositeMatch, typ string) (frag, float64, bool) {
	pid, ok := b.r.pid(typ, m.Param)
	if !ok {
		return none, 0, true
	}
	c, err := compositeConds(m, "")
	if err != nil {
		return frag{}, 0, false // the probe reports it
	}
	// The rows of the first component's codes, narrowed by a guess for
	// each further component (no statistics are kept per component).
	est := b.entries(tComposite, pid)
	for i, c := range m.Components {
		switch c := c.(type) {
		case search.TokenIn:
			if i == 0 {
				est = b.avg(tComposite, pid) * float64(len(c.Codes))
			} else {
				est *= 0.1 * float64(len(c.Codes))
			}
		case search.DateMatch:
			est *= rangeSelectivity(c.Prefix)
		case search.NumberMatch:
			est *= rangeSelectivity(c.Prefix)
		default:
			est *= 0.1
		}
	}
	return frag{"SELECT rid FROM idx_composite WHERE pid = ? AND " + c.sql, append([]any{pid}, c.args...)}, est, true
}

// rangeSelectivity guesses the fraction of values a date or number
// comparison keeps.
func rangeSelectivity(p search.Prefix) float64 {
	switch p {
	case search.Eq, search.Ap, "":
		return 0.1
	case search.Ne:
		return 0.9
	}
	return 1.0 / 3
}

// compositeProbe is m as a condition on resource alias a of type typ
// ("" on a system-level search).
func (b *builder) compositeProbe(m search.CompositeMatch, typ, a string) (frag, error) {
	c, err := compositeConds(m, "")
	if err != nil {
		return frag{}, err
	}
	if typ == "" {
		return frag{"EXISTS (SELECT 1 FROM idx_composite WHERE rid = " + a + ".rid AND pid = (SELECT pid FROM params WHERE type = " + a +
			".type AND code = ?) AND " + c.sql + ")", append([]any{m.Param}, c.args...)}, nil
	}
	pid, ok := b.r.pid(typ, m.Param)
	if !ok {
		return frag{sql: "0"}, nil
	}
	return frag{"EXISTS (SELECT 1 FROM idx_composite WHERE rid = " + a + ".rid AND pid = ? AND " + c.sql + ")", append([]any{pid}, c.args...)}, nil
}

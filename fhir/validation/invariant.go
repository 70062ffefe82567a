package validation

import (
	"strconv"
	"time"
)

// invariant is a constraint from a StructureDefinition (or one of Signpost's
// own) with a hand-coded check standing in for its FHIRPath expression.
type invariant struct {
	key   string
	human string
	check func(obj map[string]any) bool // reports whether obj satisfies the constraint
}

// invariants holds the checks for the constraint keys worth evaluating, by
// key. Only constraints that are cheap and matter for Signpost's flows are
// here; any other constraint in the SDs is not evaluated. (ele-1, "no empty
// elements", is enforced by the walker itself; ref-1 by the reference check;
// dom-2 where contained resources are walked.)
var invariants = map[string]func(map[string]any) bool{
	// Extension: must have either extensions or value[x], not both.
	"ext-1": func(o map[string]any) bool {
		_, ext := o["extension"]
		return ext != hasPrefixKey(o, "value")
	},
	// Period: start <= end when both have values.
	"per-1": func(o map[string]any) bool {
		return !definitelyAfter(o["start"], o["end"], false)
	},
	// Attachment: if data is present, contentType is too.
	"att-1": func(o map[string]any) bool {
		_, data := o["data"]
		_, ct := o["contentType"]
		return !data || ct
	},
	// Quantity: a code needs a system.
	"qty-3": func(o map[string]any) bool {
		_, code := o["code"]
		_, system := o["system"]
		return !code || system
	},
	// Appointment.participant: type or actor.
	"app-1": func(o map[string]any) bool {
		_, typ := o["type"]
		_, actor := o["actor"]
		return typ || actor
	},
	// Appointment: start and end come together.
	"app-2": func(o map[string]any) bool {
		_, start := o["start"]
		_, end := o["end"]
		return start == end
	},
	// Appointment: only proposed, cancelled and waitlist appointments may lack start and end.
	"app-3": func(o map[string]any) bool {
		_, start := o["start"]
		_, end := o["end"]
		if start && end {
			return true
		}
		switch o["status"] {
		case "proposed", "cancelled", "waitlist":
			return true
		}
		return false
	},
	// Appointment: a cancelation reason only on cancelled or no-show appointments.
	"app-4": func(o map[string]any) bool {
		if _, ok := o["cancelationReason"]; !ok {
			return true
		}
		s := o["status"]
		return s == "no-show" || s == "cancelled"
	},
}

// ownInvariants are Signpost's constraints on base types, which the R4 SDs
// lack; they are attached by type name.
var ownInvariants = []struct {
	typ string
	inv invariant
}{
	{"Slot", invariant{
		key:   "signpost-slot-1",
		human: "A slot's start must be before its end",
		check: func(o map[string]any) bool { return !definitelyAfter(o["start"], o["end"], true) },
	}},
	{"Appointment", invariant{
		key:   "signpost-app-1",
		human: "An appointment's start must not be after its end",
		check: func(o map[string]any) bool { return !definitelyAfter(o["start"], o["end"], false) },
	}},
}

func hasPrefixKey(o map[string]any, prefix string) bool {
	for k := range o {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix && k[len(prefix)] >= 'A' && k[len(prefix)] <= 'Z' {
			return true
		}
	}
	return false
}

// definitelyAfter reports whether start is certainly after end (or, with
// orEqual, not certainly before it), given two date, dateTime or instant
// strings of any precision. Values that are absent or do not parse never
// violate: their own errors are reported elsewhere.
func definitelyAfter(start, end any, orEqual bool) bool {
	s, ok1 := start.(string)
	e, ok2 := end.(string)
	if !ok1 || !ok2 {
		return false
	}
	a, ok1 := parseMoment(s)
	b, ok2 := parseMoment(e)
	if !ok1 || !ok2 {
		return false
	}
	if a.zoned != b.zoned {
		// A value without a zone may be read in any zone, up to 14 hours
		// either side of UTC.
		widen := func(m *moment) {
			if !m.zoned {
				m.lo = m.lo.Add(-14 * time.Hour)
				m.hi = m.hi.Add(14 * time.Hour)
			}
		}
		widen(&a)
		widen(&b)
	}
	if orEqual {
		// start < end fails for sure when the earliest start is at or after the latest end.
		return !a.lo.Before(b.hi.Add(-time.Nanosecond))
	}
	return !a.lo.Before(b.hi)
}

// moment is a date/time value as the range [lo, hi) it denotes.
type moment struct {
	lo, hi time.Time
	zoned  bool
}

// parseMoment reads a FHIR date, dateTime or instant already known to match
// its regex (it still refuses anything unexpected).
func parseMoment(s string) (moment, bool) {
	num := func(from, to int) (int, bool) {
		if len(s) < to {
			return 0, false
		}
		n, err := strconv.Atoi(s[from:to])
		return n, err == nil
	}
	year, ok := num(0, 4)
	if !ok {
		return moment{}, false
	}
	switch {
	case len(s) == 4:
		lo := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
		return moment{lo: lo, hi: lo.AddDate(1, 0, 0)}, true
	case len(s) == 7:
		month, ok := num(5, 7)
		if !ok {
			return moment{}, false
		}
		lo := time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		return moment{lo: lo, hi: lo.AddDate(0, 1, 0)}, true
	case len(s) == 10:
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return moment{}, false
		}
		return moment{lo: t, hi: t.AddDate(0, 0, 1)}, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return moment{}, false
	}
	return moment{lo: t, hi: t.Add(time.Nanosecond), zoned: true}, true
}
